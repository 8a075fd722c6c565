// TLS 1.3 contexts and bufferevent_openssl construction.
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

BufferEventPtr acceptSocket(Loop& loop, SSL_CTX* ctx, evutil_socket_t fd) {
  SSL* ssl = SSL_new(ctx);
  if (!ssl) {
    evutil_closesocket(fd);
    return nullptr;
  }
  // bufferevent_openssl takes ownership of `ssl` (BEV_OPT_CLOSE_ON_FREE frees it).
  BufferEventPtr bev(
      bufferevent_openssl_socket_new(loop.base(), fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
  if (bev) bufferevent_openssl_set_allow_dirty_shutdown(bev.get(), 1);
  return bev;
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
  BufferEventPtr bev(
      bufferevent_openssl_socket_new(loop.base(), -1, ssl.release(), BUFFEREVENT_SSL_CONNECTING,
                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
  if (bev) bufferevent_openssl_set_allow_dirty_shutdown(bev.get(), 1);
  return bev;
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
