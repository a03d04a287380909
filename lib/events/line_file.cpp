#include "events/line_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace rstmon::events {
namespace {

constexpr size_t kFlushAt = 1 << 20;  // queued bytes that trigger a write before the next flush

int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

LineFile::LineFile(std::string path, uint64_t rotate_size, uint32_t rotate_files)
    : path_(std::move(path)), rotate_size_(rotate_size), rotate_files_(rotate_files) {
    open_file(rotate_size_ == 0);
}

LineFile::~LineFile() {
    flush();
    if (fd_ >= 0) close(fd_);
}

std::string LineFile::rotated_name(const std::string& path, uint32_t index) {
    if (index == 0) return path;
    // The extension is what follows the last dot of the file name (not of a directory), unless
    // the name starts with it (a hidden file).
    const size_t slash = path.rfind('/');
    const size_t name = slash == std::string::npos ? 0 : slash + 1;
    const size_t dot = path.rfind('.');
    const std::string n = "." + std::to_string(index);
    if (dot == std::string::npos || dot <= name) return path + n;
    return path.substr(0, dot) + n + path.substr(dot);
}

void LineFile::fail(const char* what, int err) {
    last_error_ = std::string(what) + " '" + path_ + "': " + std::strerror(err);
}

bool LineFile::open_file(bool truncate) {
    const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_APPEND | (truncate ? O_TRUNC : 0);
    fd_ = open(path_.c_str(), flags, 0644);
    if (fd_ < 0) {
        fail("open", errno);
        next_open_ms_ = steady_ms() + 1000;
        return false;
    }
    struct stat st{};
    size_ = fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
    opened_once_ = true;
    return true;
}

void LineFile::rotate() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    bool moved = true;  // the current file is out of the way
    for (uint32_t i = rotate_files_; i > 0; --i) {
        const std::string from = rotated_name(path_, i - 1);
        if (access(from.c_str(), F_OK) != 0) continue;
        if (rename(from.c_str(), rotated_name(path_, i).c_str()) != 0) {
            fail("rename", errno);
            if (i == 1) moved = false;
        }
    }
    open_file(moved);  // a file that could not be moved is appended to, never truncated
}

void LineFile::append(std::string_view line) {
    if (rotate_size_ > 0 && size_ + queued_.size() > 0 &&
        size_ + queued_.size() + line.size() + 1 > rotate_size_) {
        flush();
        if (fd_ >= 0 && size_ > 0) rotate();
    }
    queued_.append(line);
    queued_.push_back('\n');
    queued_lines_++;
    if (queued_.size() >= kFlushAt) flush();
}

void LineFile::flush() {
    if (queued_.empty()) return;
    if (fd_ < 0 && steady_ms() >= next_open_ms_)
        open_file(rotate_size_ == 0 && !opened_once_);  // a retry: the directory may be back
    if (fd_ < 0) {
        lost_ += queued_lines_;
        queued_.clear();
        queued_lines_ = 0;
        return;
    }
    size_t done = 0;
    while (done < queued_.size()) {
        const ssize_t n = write(fd_, queued_.data() + done, queued_.size() - done);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        fail("write", n < 0 ? errno : ENOSPC);
        break;
    }
    // Keep the whole lines that made it; a line cut short is taken back out of the file, so
    // the next line does not glue onto its half (O_APPEND: the next write starts at the cut).
    size_t kept = done;
    if (done < queued_.size()) {
        const size_t nl = done == 0 ? std::string::npos : queued_.rfind('\n', done - 1);
        kept = nl == std::string::npos ? 0 : nl + 1;
        if (kept < done && ftruncate(fd_, static_cast<off_t>(size_ + kept)) != 0)
            fail("ftruncate", errno);
    }
    uint64_t lines = 0;
    for (size_t i = 0; i < kept; ++i) lines += queued_[i] == '\n';
    size_ += kept;
    written_ += lines;
    lost_ += queued_lines_ - lines;
    queued_.clear();
    queued_lines_ = 0;
}

}  // namespace rstmon::events
