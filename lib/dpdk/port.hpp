// Probing and setting up one ethdev port: queues, symmetric RSS, timestamps, TX for inline mode.
#pragma once

#include <cstdint>
#include <string>

struct rte_mempool;

namespace rstmon::dpdk {

struct PortSpec;

// The symmetric Toeplitz key (0x6d5a repeated): hash(a->b) == hash(b->a), so both directions of
// a connection land on the same queue and worker.
inline constexpr uint8_t kMaxRssKeyLen = 52;
extern const uint8_t kSymmetricRssKey[kMaxRssKeyLen];
// The key length to program for a NIC that reports `hash_key_size` bytes (rte_eth_dev_info),
// 0 when our symmetric key cannot be given to it.
uint8_t rss_key_len(uint8_t hash_key_size);

struct ProbedPort {
    uint16_t id = 0;
    uint16_t max_rx_queues = 1, max_tx_queues = 0;
    bool rss = false;  // can spread over several RX queues with our key
    uint8_t rss_key_len = 40;  // bytes of kSymmetricRssKey the NIC takes
};

// rte_dev_probe + lookup by name (PCI address or the vdev name before the first comma).
ProbedPort probe_port(const PortSpec& spec);

struct PortSetup {
    uint16_t rx_queues = 1;
    uint16_t tx_queues = 0;
    uint16_t descriptors = 1024;
    bool rss = false;
    bool timestamps = false;
};

// Configures, starts and sets promiscuous mode; programs a full RETA when RSS is on. Throws.
void start_port(const ProbedPort& port, const std::string& name, const PortSetup& setup,
                rte_mempool* pool);
void stop_port(uint16_t port_id);

}  // namespace rstmon::dpdk
