// Package pcap reads and writes classic libpcap capture files and decodes
// the few link and network layers hipnet's tests and tools meet: Ethernet,
// raw IP and Linux cooked (SLL) frames carrying IPv4 or IPv6, with UDP
// ports decoded.
//
// It exists for golden tests against captures from other implementations
// (../shared/interop beside the repository), for writing captures that tshark can decrypt, and
// for the operator tool. It is not a capture engine: it opens no sockets and
// does no I/O of its own beyond the io.Reader / io.Writer it is handed.
// pcapng is not supported; only the classic format
// (https://www.tcpdump.org/manpages/pcap-savefile.5.html) in either byte
// order with microsecond or nanosecond timestamps.
package pcap
