// The I/O floor of a keep-alive TCP proxy on io_uring: what the gateway's four socket
// operations per call cost with no HTTP, no JSON and no policy. Each accepted client gets its
// own upstream connection (as nginx's `keepalive` pool gives one per busy client); bytes from
// either side are sent on to the other as they arrive. bench/net/vs_nginx.sh runs it beside
// the Sluice gateway and nginx proxy_pass, so the table shows how far each is from the floor.
//
// Same ring set-up as the engine (SINGLE_ISSUER | DEFER_TASKRUN, multishot accept, multishot
// recv into a provided-buffer ring, one submit per loop iteration). Not a product: it connects
// to the upstream synchronously at accept time and has no timeouts.
//
// Usage: noop_proxy LISTEN_PORT UPSTREAM_PORT     (both on 127.0.0.1; prints "listening PORT")

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr unsigned kBuffers = 4096;
constexpr unsigned kBufferSize = 4096;
constexpr uint16_t kGroup = 0;

enum class op : uint8_t { accept, recv, send };

uint64_t pack(op kind, int fd) {
  return (uint64_t(kind) << 32) | uint32_t(fd);
}

struct side {
  int peer = -1;
  bool open = false;
  bool sending = false;
  std::string out;       // bytes waiting for the send in flight to finish
  std::string sending_;  // bytes of the send in flight
};

struct proxy {
  io_uring ring{};
  io_uring_buf_ring* br = nullptr;
  char* slab = nullptr;
  sockaddr_in upstream{};
  std::vector<side> sides = std::vector<side>(65536);

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    while (s == nullptr) {
      io_uring_submit(&ring);
      s = io_uring_get_sqe(&ring);
    }
    return s;
  }

  void arm_recv(int fd) {
    io_uring_sqe* s = sqe();
    io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = kGroup;
    io_uring_sqe_set_data64(s, pack(op::recv, fd));
  }

  void start_send(int fd) {
    side& d = sides[fd];
    d.sending_.swap(d.out);
    d.out.clear();
    d.sending = true;
    io_uring_sqe* s = sqe();
    io_uring_prep_send(s, fd, d.sending_.data(), d.sending_.size(), MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, pack(op::send, fd));
  }

  void close_pair(int fd) {
    int peer = sides[fd].peer;
    for (int x : {fd, peer}) {
      if (x < 0 || !sides[x].open) continue;
      sides[x].open = false;
      ::shutdown(x, SHUT_RDWR);
    }
  }

  void recycle(unsigned bid) {
    io_uring_buf_ring_add(br, slab + size_t(bid) * kBufferSize, kBufferSize, bid,
                          io_uring_buf_ring_mask(kBuffers), 0);
    io_uring_buf_ring_advance(br, 1);
  }

  void on_accept(int fd) {
    int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (up < 0 || ::connect(up, reinterpret_cast<sockaddr*>(&upstream), sizeof upstream) != 0 ||
        fd >= int(sides.size()) || up >= int(sides.size())) {
      std::perror("noop_proxy: upstream");
      if (up >= 0) ::close(up);
      ::close(fd);
      return;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sides[fd] = side{};
    sides[up] = side{};
    sides[fd].peer = up;
    sides[up].peer = fd;
    sides[fd].open = sides[up].open = true;
    arm_recv(fd);
    arm_recv(up);
  }

  void on_recv(int fd, const io_uring_cqe* cqe) {
    side& d = sides[fd];
    if (cqe->res <= 0) {
      if (cqe->res == -ENOBUFS && d.open) {
        arm_recv(fd);
        return;
      }
      if (d.open) close_pair(fd);
      if (!(cqe->flags & IORING_CQE_F_MORE)) ::close(fd);
      return;
    }
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (d.open && sides[d.peer].open) {
      side& p = sides[d.peer];
      p.out.append(slab + size_t(bid) * kBufferSize, size_t(cqe->res));
      if (!p.sending) start_send(d.peer);
    }
    recycle(bid);
    if (!(cqe->flags & IORING_CQE_F_MORE) && d.open) arm_recv(fd);
  }

  void on_send(int fd, const io_uring_cqe* cqe) {
    side& d = sides[fd];
    d.sending = false;
    if (cqe->res < 0) {
      close_pair(fd);
      return;
    }
    if (size_t(cqe->res) < d.sending_.size()) d.out.insert(0, d.sending_, size_t(cqe->res));
    if (!d.out.empty() && d.open) start_send(fd);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: noop_proxy LISTEN_PORT UPSTREAM_PORT\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  static proxy p;
  p.upstream.sin_family = AF_INET;
  p.upstream.sin_port = htons(uint16_t(std::atoi(argv[2])));
  p.upstream.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 4096)) {
    std::perror("noop_proxy: listen");
    return 1;
  }

  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  params.cq_entries = 16384;
  if (int rc = io_uring_queue_init_params(4096, &p.ring, &params); rc < 0) {
    std::fprintf(stderr, "noop_proxy: io_uring: %s\n", std::strerror(-rc));
    return 1;
  }
  // liburing 2.3 (Debian 12) has no io_uring_setup_buf_ring: map and register by hand.
  void* ring_mem = mmap(nullptr, kBuffers * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                        MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  p.br = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(ring_mem);
  reg.ring_entries = kBuffers;
  reg.bgid = kGroup;
  if (ring_mem == MAP_FAILED || io_uring_register_buf_ring(&p.ring, &reg, 0) != 0) {
    std::fprintf(stderr, "noop_proxy: buffer ring failed\n");
    return 1;
  }
  io_uring_buf_ring_init(p.br);
  p.slab = static_cast<char*>(std::aligned_alloc(4096, size_t(kBuffers) * kBufferSize));
  for (unsigned i = 0; i < kBuffers; ++i) {
    io_uring_buf_ring_add(p.br, p.slab + size_t(i) * kBufferSize, kBufferSize, i,
                          io_uring_buf_ring_mask(kBuffers), int(i));
  }
  io_uring_buf_ring_advance(p.br, int(kBuffers));

  io_uring_sqe* s = p.sqe();
  io_uring_prep_multishot_accept(s, lfd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, pack(op::accept, lfd));
  std::printf("listening %s\n", argv[1]);
  std::fflush(stdout);

  for (;;) {
    io_uring_submit_and_wait(&p.ring, 1);
    unsigned head;
    unsigned n = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&p.ring, head, cqe) {
      ++n;
      uint64_t ud = io_uring_cqe_get_data64(cqe);
      int fd = int(uint32_t(ud));
      switch (op(ud >> 32)) {
        case op::accept:
          if (cqe->res >= 0) p.on_accept(cqe->res);
          if (!(cqe->flags & IORING_CQE_F_MORE)) {
            io_uring_sqe* a = p.sqe();
            io_uring_prep_multishot_accept(a, lfd, nullptr, nullptr, SOCK_CLOEXEC);
            io_uring_sqe_set_data64(a, pack(op::accept, lfd));
          }
          break;
        case op::recv:
          p.on_recv(fd, cqe);
          break;
        case op::send:
          p.on_send(fd, cqe);
          break;
      }
    }
    io_uring_cq_advance(&p.ring, n);
  }
}
