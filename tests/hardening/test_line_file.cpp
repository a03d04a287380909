// events::LineFile, the RST event file: whole lines or counted losses, spdlog's rotated names,
// an unopenable file retried. (A full disk is tests/hardening/test_event_write_errors.py: it needs
// a real tmpfs.)
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "events/line_file.hpp"

using rstmon::events::LineFile;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/rstmon-linefile-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
};

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

}  // namespace

TEST(LineFile, RotatedNamesAreSpdlogs) {
    EXPECT_EQ(LineFile::rotated_name("/var/log/rst.jsonl", 0), "/var/log/rst.jsonl");
    EXPECT_EQ(LineFile::rotated_name("/var/log/rst.jsonl", 2), "/var/log/rst.2.jsonl");
    EXPECT_EQ(LineFile::rotated_name("/var/log.d/rst", 1), "/var/log.d/rst.1");
    EXPECT_EQ(LineFile::rotated_name("/var/log/.rst", 1), "/var/log/.rst.1");
    EXPECT_EQ(LineFile::rotated_name("rst.a.jsonl", 3), "rst.a.3.jsonl");
}

TEST(LineFile, OneFileIsTruncatedAndHoldsWholeLines) {
    TempDir d;
    const std::string p = d.path + "/ev.jsonl";
    std::ofstream(p) << "old content\n";
    {
        LineFile f(p);
        EXPECT_EQ(f.last_error(), "");
        f.append("{\"a\":1}");
        f.append("{\"a\":2}");
        f.flush();
        EXPECT_EQ(f.lines_written(), 2u);
        EXPECT_EQ(f.lines_lost(), 0u);
    }
    EXPECT_EQ(lines_of(p), (std::vector<std::string>{"{\"a\":1}", "{\"a\":2}"}));
}

TEST(LineFile, RotatesBySizeKeepingNFiles) {
    TempDir d;
    const std::string p = d.path + "/ev.jsonl";
    std::ofstream(p) << std::string(20, 'x') << "\n";  // appended to, across restarts
    LineFile f(p, 100, 2);
    for (int i = 0; i < 20; ++i) f.append("line " + std::to_string(i) + std::string(23, '.'));
    f.flush();
    EXPECT_EQ(f.lines_written(), 20u);
    EXPECT_TRUE(fs::exists(d.path + "/ev.1.jsonl"));
    EXPECT_TRUE(fs::exists(d.path + "/ev.2.jsonl"));
    EXPECT_FALSE(fs::exists(d.path + "/ev.3.jsonl"));
    size_t kept = 0;
    for (const auto* name : {"/ev.jsonl", "/ev.1.jsonl", "/ev.2.jsonl"}) {
        EXPECT_LE(fs::file_size(d.path + name), 100u) << name;
        kept += lines_of(d.path + name).size();
    }
    // 30-byte lines, 3 to a file: the last 9 lines (or fewer at a file boundary) are kept.
    EXPECT_GE(kept, 7u);
    EXPECT_EQ(lines_of(p).back(), "line 19" + std::string(23, '.'));
}

TEST(LineFile, AnUnopenableFileCountsLossesAndIsRetried) {
    TempDir d;
    const std::string dir = d.path + "/later";
    const std::string p = dir + "/ev.jsonl";
    LineFile f(p, 1 << 20, 3);
    EXPECT_NE(f.last_error().find("No such file or directory"), std::string::npos)
        << f.last_error();
    f.append("{\"lost\":1}");
    f.flush();
    EXPECT_EQ(f.lines_lost(), 1u);
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    // Retried at most once a second: poll until the file is back.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (f.lines_written() == 0 && std::chrono::steady_clock::now() < deadline) {
        f.append("{\"kept\":1}");
        f.flush();
        if (f.lines_written() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(f.lines_written(), 1u);
    EXPECT_EQ(lines_of(p), (std::vector<std::string>{"{\"kept\":1}"}));
    EXPECT_GE(f.lines_lost(), 1u);
}
