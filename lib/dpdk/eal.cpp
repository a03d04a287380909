#include "dpdk/eal.hpp"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_version.h>

#include <stdexcept>

namespace rstmon::dpdk {

std::string dpdk_version() { return rte_version(); }

Eal::Eal(const std::vector<std::string>& args) {
    static std::vector<std::string> keep;  // the EAL may keep pointers into argv
    keep = args;
    std::vector<char*> argv;
    for (auto& a : keep) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(keep.size()), argv.data()) < 0)
        throw std::runtime_error(std::string("EAL initialisation failed: ") +
                                 rte_strerror(rte_errno));
}

Eal::~Eal() { rte_eal_cleanup(); }

}  // namespace rstmon::dpdk
