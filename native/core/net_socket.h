// Socket helpers of the I/O loop for numeric IPv4 and IPv6 addresses: a
// listening socket (optionally SO_REUSEPORT, so several processes share a
// port), a non-blocking connect, and the addresses of a connected socket.
// Host names are resolved by the caller (JavaScript's dns.lookup) beforehand.
//
// Every function returns 0 or a descriptor on success and -errno on failure
// (-EINVAL for an address that is not a numeric IPv4 or IPv6 address).
#ifndef ZS_NET_SOCKET_H
#define ZS_NET_SOCKET_H

#include <cstdint>

extern "C" {

// Binds and listens; *bound_port receives the port (useful with port 0).
int zs_net_listen(const char* host, int port, int reuse_port, int backlog, int* bound_port);

// A duplicate (close-on-exec) of `fd`, which must be a listening TCP socket,
// made non-blocking (a flag of the socket, so shared with every process that
// holds it); *bound_port receives its port. Returns the duplicate or -errno.
int zs_net_adopt_listener(int fd, int* bound_port);

// Starts a non-blocking connect; the descriptor is returned whether the
// connection is already established or still in progress (wait for writable,
// then zs_net_socket_error). local_host may be null.
int zs_net_connect(const char* host, int port, const char* local_host);

// The pending error of a socket (SO_ERROR), as a positive errno or 0.
int zs_net_socket_error(int fd);

// Low-latency options for a connected socket (TCP_NODELAY).
void zs_net_tune(int fd);

// The same for a socket accept() returned from a zs_net_listen socket: nothing
// to do on Linux, where accepted sockets inherit TCP_NODELAY from the listener
// (one system call less per accepted connection).
void zs_net_tune_accepted(int fd);

// Closes with a reset (SO_LINGER 0) instead of an orderly FIN.
void zs_net_close_abort(int fd);

// Numeric address text (at most 46 bytes with the NUL) and port of either end.
int zs_net_address(int fd, int remote, char* host, int host_size, int* port);

}

#endif
