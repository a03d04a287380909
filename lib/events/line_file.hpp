// An append-only file of text lines (the RST event stream) that survives a full disk or an
// unwritable directory: a line is either in the file whole or counted as lost, never half
// written; writing resumes by itself when space or permission returns. Optionally rotated by
// size, with spdlog's names (rst.jsonl, rst.1.jsonl, ... rst.N.jsonl) so existing log shippers
// keep working. Used by the control thread only: no locking.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rstmon::events {

class LineFile {
public:
    // `rotate_size` 0: one file, truncated when opened. Else the file is appended to (across
    // restarts) and rotated before a line would take it past `rotate_size` bytes, keeping
    // `rotate_files` rotated files. Never throws: a file that cannot be opened is retried.
    LineFile(std::string path, uint64_t rotate_size = 0, uint32_t rotate_files = 0);
    ~LineFile();
    LineFile(const LineFile&) = delete;
    LineFile& operator=(const LineFile&) = delete;

    // Queues one line (a '\n' is added); written by the next flush, or now when much is queued.
    void append(std::string_view line);
    // Writes what is queued. Lines the file system refuses are dropped and counted; a write cut
    // short inside a line is cut back to the last whole line.
    void flush();

    uint64_t lines_written() const { return written_; }
    uint64_t lines_lost() const { return lost_; }
    // The last failure, e.g. "write: No space left on device" (empty until one happens).
    const std::string& last_error() const { return last_error_; }
    const std::string& path() const { return path_; }

    // spdlog's rotated name: "dir/rst.jsonl", 2 -> "dir/rst.2.jsonl" (0 is the path itself).
    static std::string rotated_name(const std::string& path, uint32_t index);

private:
    bool open_file(bool truncate);
    void rotate();
    void fail(const char* what, int err);

    std::string path_;
    uint64_t rotate_size_;
    uint32_t rotate_files_;
    int fd_ = -1;
    uint64_t size_ = 0;         // bytes in the current file
    std::string queued_;        // whole lines, each ending in '\n'
    uint64_t queued_lines_ = 0;
    uint64_t written_ = 0, lost_ = 0;
    std::string last_error_;
    int64_t next_open_ms_ = 0;  // a failed open is retried at most once a second
    bool opened_once_ = false;  // a single (non-rotated) file is truncated on its first open only
};

}  // namespace rstmon::events
