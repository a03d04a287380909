// A progress line on stderr for long offline replays: only when stderr is a terminal (logs and
// CI output stay clean), only after the first second (short replays print nothing), redrawn
// four times a second in place, erased when the replay ends.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>

namespace rstmon::app {

class ReplayProgress {
public:
    explicit ReplayProgress(uint64_t total) : total_(total), on_(isatty(STDERR_FILENO) == 1) {}
    ~ReplayProgress() { done(); }

    void update(uint64_t frames) {
        if (!on_ || total_ == 0) return;
        const auto now = Clock::now();
        const double t = std::chrono::duration<double>(now - start_).count();
        if (t < 1.0 || now - last_ < std::chrono::milliseconds(250)) return;
        last_ = now;
        const double frac = frames >= total_ ? 1.0 : static_cast<double>(frames) / total_;
        const double rate = frames / t;
        const double eta = rate > 0 ? (total_ - (frames < total_ ? frames : total_)) / rate : 0;
        char bar[21];
        const int fill = static_cast<int>(frac * 20);
        for (int i = 0; i < 20; ++i) bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        std::fprintf(stderr, "\rreplay [%s] %3.0f%%  %.1f of %.1f M frames  %.2f Mpps  %.0f s left \033[K",
                     bar, frac * 100, frames / 1e6, total_ / 1e6, rate / 1e6, eta);
        std::fflush(stderr);
        drawn_ = true;
    }
    void done() {
        if (!drawn_) return;
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
        drawn_ = false;
    }

private:
    using Clock = std::chrono::steady_clock;
    uint64_t total_;
    bool on_;
    bool drawn_ = false;
    Clock::time_point start_ = Clock::now(), last_{};
};

}  // namespace rstmon::app
