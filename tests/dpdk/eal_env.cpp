// One real EAL for the whole test binary: no hugepages, no PCI, no shared runtime files, so it
// runs anywhere and in parallel with other EAL processes.
#include <gtest/gtest.h>

#include "dpdk/eal.hpp"

namespace {
class EalEnvironment : public ::testing::Environment {
public:
    void SetUp() override {
        eal_ = std::make_unique<rstmon::dpdk::Eal>(std::vector<std::string>{
            "dpdk_tests", "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--no-telemetry",
            "--lcores=0@0,1@1,2@0,3@1",
            "--log-level=3"});
    }
    void TearDown() override { eal_.reset(); }

private:
    std::unique_ptr<rstmon::dpdk::Eal> eal_;
};
const auto* env = ::testing::AddGlobalTestEnvironment(new EalEnvironment);
}  // namespace
