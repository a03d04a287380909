#include "dpdk/port.hpp"

#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>

#include <stdexcept>
#include <vector>

#include "dpdk/eal.hpp"

namespace rstmon::dpdk {

const uint8_t kSymmetricRssKey[kMaxRssKeyLen] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};

uint8_t rss_key_len(uint8_t hash_key_size) {
    // 0: the driver does not say; 40 bytes is what every Toeplitz NIC accepts.
    if (hash_key_size == 0) return 40;
    // The pattern repeats every 2 bytes, so any even length up to ours stays symmetric (Intel
    // XL710/E810 take 52 bytes, most others 40).
    if (hash_key_size % 2 != 0 || hash_key_size > kMaxRssKeyLen) return 0;
    return hash_key_size;
}

namespace {
std::runtime_error dpdk_error(const std::string& what, int err) {
    return std::runtime_error(what + ": " + rte_strerror(err < 0 ? -err : err));
}
}  // namespace

ProbedPort probe_port(const PortSpec& spec) {
    const int rc = rte_dev_probe(spec.device.c_str());
    if (rc != 0 && rc != -EEXIST) throw dpdk_error("cannot probe device '" + spec.device + "'", rc);
    const std::string devname = spec.device.substr(0, spec.device.find(','));
    ProbedPort p;
    if (rte_eth_dev_get_port_by_name(devname.c_str(), &p.id) != 0)
        throw std::runtime_error("device '" + devname + "' is not an ethdev port");
    rte_eth_dev_info info{};
    if (int e = rte_eth_dev_info_get(p.id, &info); e != 0)
        throw dpdk_error("cannot query port " + spec.name, e);
    p.max_rx_queues = info.max_rx_queues;
    p.max_tx_queues = info.max_tx_queues;
    p.rss = info.max_rx_queues > 1 &&
            (info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP)) != 0 &&
            rss_key_len(info.hash_key_size) != 0;
    p.rss_key_len = rss_key_len(info.hash_key_size);
    return p;
}

void start_port(const ProbedPort& port, const std::string& name, const PortSetup& s,
                rte_mempool* pool) {
    const uint16_t pid = port.id;
    rte_eth_dev_info info{};
    rte_eth_dev_info_get(pid, &info);
    rte_eth_conf conf{};
    if (s.rss) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = const_cast<uint8_t*>(kSymmetricRssKey);
        conf.rx_adv_conf.rss_conf.rss_key_len = port.rss_key_len;
        conf.rx_adv_conf.rss_conf.rss_hf =
            (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP) & info.flow_type_rss_offloads;
    }
    if (s.timestamps && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP))
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
    if (s.tx_queues > port.max_tx_queues)
        throw std::runtime_error("port " + name + " has " + std::to_string(port.max_tx_queues) +
                                 " TX queue(s), inline forwarding needs " +
                                 std::to_string(s.tx_queues));
    int rc;
    if ((rc = rte_eth_dev_configure(pid, s.rx_queues, s.tx_queues, &conf)) != 0)
        throw dpdk_error("cannot configure port " + name, rc);
    uint16_t nrx = s.descriptors, ntx = s.descriptors;
    rte_eth_dev_adjust_nb_rx_tx_desc(pid, &nrx, &ntx);
    const int sock = rte_eth_dev_socket_id(pid) < 0 ? SOCKET_ID_ANY : rte_eth_dev_socket_id(pid);
    for (uint16_t q = 0; q < s.rx_queues; ++q)
        if ((rc = rte_eth_rx_queue_setup(pid, q, nrx, sock, nullptr, pool)) != 0)
            throw dpdk_error("cannot set up RX queue of port " + name, rc);
    for (uint16_t q = 0; q < s.tx_queues; ++q)
        if ((rc = rte_eth_tx_queue_setup(pid, q, ntx, sock, nullptr)) != 0)
            throw dpdk_error("cannot set up TX queue of port " + name, rc);
    if ((rc = rte_eth_dev_start(pid)) != 0) throw dpdk_error("cannot start port " + name, rc);
    rte_eth_promiscuous_enable(pid);  // a SPAN port sees other hosts' MACs; some PMDs refuse
    if (s.rss && info.reta_size > 0) {
        std::vector<rte_eth_rss_reta_entry64> reta(info.reta_size / RTE_ETH_RETA_GROUP_SIZE + 1);
        for (uint16_t i = 0; i < info.reta_size; ++i) {
            auto& e = reta[i / RTE_ETH_RETA_GROUP_SIZE];
            e.mask |= 1ull << (i % RTE_ETH_RETA_GROUP_SIZE);
            e.reta[i % RTE_ETH_RETA_GROUP_SIZE] = static_cast<uint16_t>(i % s.rx_queues);
        }
        if ((rc = rte_eth_dev_rss_reta_update(pid, reta.data(), info.reta_size)) != 0)
            throw dpdk_error("cannot program the RSS redirection table of port " + name, rc);
    }
}

void stop_port(uint16_t port_id) {
    rte_eth_dev_stop(port_id);
    rte_eth_dev_close(port_id);
}

}  // namespace rstmon::dpdk
