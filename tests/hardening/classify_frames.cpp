// Prints the class rstmon's parser gives every frame of a capture, one TSV row per frame:
//   frame  class  reason  rst  sliced
// (the columns of tests/data/make-malformed.py's expectation file), so a test can compare frame
// by frame what the end-to-end replay can only show as totals. The parser is the one the workers
// run, on the whole captured frame, exactly as a contiguous mbuf hands it over.
#include <pcap/pcap.h>

#include <cstdio>
#include <string>
#include <vector>

#include "packet/packet.hpp"

using namespace rstmon;

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: classify_frames CAPTURE\n");
        return 2;
    }
    char err[PCAP_ERRBUF_SIZE] = {};
    pcap_t* p = pcap_open_offline(argv[1], err);
    if (p == nullptr) {
        std::fprintf(stderr, "classify_frames: %s\n", err);
        return 2;
    }
    packet::LinkType link;
    if (!packet::link_type_from_dlt(pcap_datalink(p), link)) {
        std::fprintf(stderr, "classify_frames: link type %d not parsed by rstmon\n",
                     pcap_datalink(p));
        pcap_close(p);
        return 2;
    }
    std::printf("frame\tclass\treason\trst\tsliced\n");
    pcap_pkthdr* h;
    const u_char* d;
    unsigned frame = 0;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
        ++frame;
        // An exact-size copy: an overread past the frame is a sanitizer report, not a pass.
        std::vector<uint8_t> buf(d, d + h->caplen);
        packet::TcpSegment seg;
        const packet::ParseResult r = packet::parse(link, buf.data(), buf.size(), seg);
        switch (r.status) {
            case packet::ParseStatus::tcp:
                std::printf("%u\ttracked\t\t%d\t%d\n", frame, seg.has(packet::tcpflag::rst) ? 1 : 0,
                            seg.sliced ? 1 : 0);
                break;
            case packet::ParseStatus::ignored:
                std::printf("%u\tignored\t%s\t0\t0\n", frame,
                            std::string(packet::ignored_name(r.ignored)).c_str());
                break;
            case packet::ParseStatus::malformed:
                std::printf("%u\tmalformed\t%s\t0\t0\n", frame,
                            std::string(packet::malformed_name(r.malformed)).c_str());
                break;
        }
    }
    const bool failed = rc == PCAP_ERROR;
    if (failed) std::fprintf(stderr, "classify_frames: %s\n", pcap_geterr(p));
    pcap_close(p);
    return failed ? 1 : 0;
}
