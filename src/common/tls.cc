// TLS 1.3 contexts and TLS bufferevents (bufferevent_openssl filters over socket bufferevents).
#include "common/tls.h"

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace ds::tls {
namespace {

SslCtxPtr baseContext(const SSL_METHOD* method) {
  SslCtxPtr ctx(SSL_CTX_new(method));
  if (!ctx) return ctx;
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  // Partial writes and moving buffers are what bufferevent_openssl expects.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // AES-128-GCM first: as strong as needed here and cheaper per byte than AES-256 with AES-NI.
  SSL_CTX_set_ciphersuites(ctx.get(),
                           "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
                           "TLS_AES_256_GCM_SHA384");
  return ctx;
}

}  // namespace

std::string opensslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

SslCtxPtr serverContext(const std::string& certPath, const std::string& keyPath, std::string& err) {
  SslCtxPtr ctx = baseContext(TLS_server_method());
  if (!ctx) {
    err = opensslErrors();
    return nullptr;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), certPath.c_str()) != 1) {
    err = certPath + ": " + opensslErrors();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), keyPath.c_str(), SSL_FILETYPE_PEM) != 1) {
    err = keyPath + ": " + opensslErrors();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    err = keyPath + ": key does not match certificate " + certPath;
    return nullptr;
  }
  // Clients are short-lived; tickets would only add work.
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  return ctx;
}

SslCtxPtr clientContext(const std::string& caPath, std::string& err) {
  SslCtxPtr ctx = baseContext(TLS_client_method());
  if (!ctx) {
    err = opensslErrors();
    return nullptr;
  }
  if (SSL_CTX_load_verify_locations(ctx.get(), caPath.c_str(), nullptr) != 1) {
    err = caPath + ": " + opensslErrors();
    return nullptr;
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

namespace {

// TLS runs as a filter over a plain socket bufferevent rather than on the socket itself: the
// socket side then reads (attachSocketIo) and writes up to kMaxSocketIo per system call, many TLS
// records at a time, where OpenSSL on a socket makes two reads and one write per record. The
// write high watermark bounds how much ciphertext waits below the TLS layer, so the TLS
// bufferevent's own output length still tells its owner about backpressure.

BufferEventPtr filterOver(Loop& loop, evutil_socket_t fd, SSL* ssl, bufferevent_ssl_state state) {
  bufferevent* sock = bufferevent_socket_new(loop.base(), fd, BEV_OPT_CLOSE_ON_FREE);
  if (!sock) {
    SSL_free(ssl);
    if (fd >= 0) evutil_closesocket(fd);
    return nullptr;
  }
  bufferevent_set_max_single_write(sock, kMaxSocketIo);
  bufferevent_setwatermark(sock, EV_WRITE, 0, kMaxSocketIo);
  // The filter takes ownership of `ssl` and, with BEV_OPT_CLOSE_ON_FREE, of `sock` (which
  // closes the socket).
  BufferEventPtr bev(bufferevent_openssl_filter_new(
      loop.base(), sock, ssl, state, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
  if (!bev) return nullptr;
  bufferevent_openssl_set_allow_dirty_shutdown(bev.get(), 1);
  attachSocketIo(bev.get(), sock);
  return bev;
}

bufferevent* socketOf(bufferevent* bev) { return bev ? bufferevent_get_underlying(bev) : nullptr; }

// A client filter created before its socket existed has not sent its ClientHello: libevent
// starts the handshake only when the socket is set on the filter itself. Writing the
// ClientHello into the socket's output now sends it as soon as the connection is up.
void startHandshake(bufferevent* bev) {
  SSL* ssl = bufferevent_openssl_get_ssl(bev);
  if (ssl && !SSL_is_init_finished(ssl)) {
    SSL_do_handshake(ssl);
    ERR_clear_error();
  }
}

}  // namespace

BufferEventPtr acceptSocket(Loop& loop, SSL_CTX* ctx, evutil_socket_t fd) {
  SSL* ssl = SSL_new(ctx);
  if (!ssl) {
    evutil_closesocket(fd);
    return nullptr;
  }
  return filterOver(loop, fd, ssl, BUFFEREVENT_SSL_ACCEPTING);
}

BufferEventPtr newClient(Loop& loop, SSL_CTX* ctx, const std::string& serverName) {
  SslPtr ssl(SSL_new(ctx));
  if (!ssl) return nullptr;
  in6_addr a6;
  in_addr a4;
  bool isIp = inet_pton(AF_INET, serverName.c_str(), &a4) == 1 ||
              inet_pton(AF_INET6, serverName.c_str(), &a6) == 1;
  if (isIp) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), serverName.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl.get(), serverName.c_str());
    if (SSL_set1_host(ssl.get(), serverName.c_str()) != 1) return nullptr;
  }
  return filterOver(loop, -1, ssl.release(), BUFFEREVENT_SSL_CONNECTING);
}

int connect(bufferevent* bev, evdns_base* dns, const std::string& host, int port) {
  bufferevent* sock = socketOf(bev);
  if (!sock) return -1;
  startHandshake(bev);
  return bufferevent_socket_connect_hostname(sock, dns, AF_UNSPEC, host.c_str(), port);
}

int attachSocket(bufferevent* bev, evutil_socket_t fd) {
  bufferevent* sock = socketOf(bev);
  if (!sock || bufferevent_setfd(sock, fd) != 0) return -1;
  startHandshake(bev);
  return 0;
}

int dnsError(bufferevent* bev) {
  bufferevent* sock = socketOf(bev);
  return sock ? bufferevent_socket_get_dns_error(sock) : 0;
}

std::string lastError(bufferevent* bev) {
  std::string out;
  if (bev) {
    unsigned long e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      if (!out.empty()) out += "; ";
      out += buf;
    }
    if (SSL* ssl = bufferevent_openssl_get_ssl(bev)) {
      long vr = SSL_get_verify_result(ssl);
      if (vr != X509_V_OK) {
        if (!out.empty()) out += "; ";
        out += std::string("certificate verify: ") + X509_verify_cert_error_string(vr);
      }
    }
  }
  if (out.empty() && ERR_peek_error() != 0) out = opensslErrors();
  return out;
}

}  // namespace ds::tls
