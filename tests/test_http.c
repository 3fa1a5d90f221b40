/*
 * test_http.c - the server's transport before the model is there: bound
 * while loading, /health and the /v1 endpoints answer 503 with the error envelope,
 * /metrics and the web page already work, routing gives 404/405; then
 * srv_ready with a model makes /health 200, and srv_stop shuts it down.
 * (The full API is tested end to end over HTTP by tests/test_server.py.)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/mat.h"
#include "../server/http.h"
#include "test.h"

/* One HTTP/1.0 exchange; returns the status, the whole answer in buf. */
static int http(int port, const char *req, char *buf, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    size_t n = strlen(req), w = 0;
    while (w < n) {
        ssize_t k = write(fd, req + w, n - w);
        if (k <= 0) break;
        w += (size_t)k;
    }
    size_t got = 0;
    ssize_t k;
    while (got + 1 < cap && (k = read(fd, buf + got, cap - 1 - got)) > 0)
        got += (size_t)k;
    buf[got] = 0;
    close(fd);
    int status = 0;
    return sscanf(buf, "HTTP/1.%*d %d", &status) == 1 ? status : -1;
}

int main(void) {
    mat_init(2);
    struct srv_config cfg;
    srv_config_defaults(&cfg);
    cfg.port = 0;
    struct server *s = NULL;
    struct fl_err err = {0};
    CHECK_INT(srv_start(&cfg, &s, &err), 0);
    if (!s) return TEST_END();
    int port = srv_port(s);
    CHECK(port > 0);
    char buf[65536];
    CHECK_INT(http(port, "GET /health HTTP/1.0\r\n\r\n", buf, sizeof buf), 503);
    CHECK(strstr(buf, "\"type\":\"unavailable_error\"") && strstr(buf, "still loading"));
    CHECK(strstr(buf, "X-Request-Id: "));
    const char *post = "POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
                       "Content-Length: 15\r\n\r\n{\"prompt\":\"x\"}\n";
    CHECK_INT(http(port, post, buf, sizeof buf), 503);
    CHECK_INT(http(port, "GET /v1/models HTTP/1.0\r\n\r\n", buf, sizeof buf), 503);
    CHECK_INT(http(port, "GET /metrics HTTP/1.0\r\n\r\n", buf, sizeof buf), 200);
    CHECK(strstr(buf, "flamingo_requests_total{endpoint=\"health\",status=\"503\"} 1"));
    CHECK_INT(http(port, "GET / HTTP/1.0\r\n\r\n", buf, sizeof buf), 200);
    CHECK(strstr(buf, "aria-live"));
    CHECK_INT(http(port, "GET /nope HTTP/1.0\r\n\r\n", buf, sizeof buf), 404);
    CHECK_INT(http(port, "PUT /v1/caption HTTP/1.0\r\nContent-Length: 0\r\n\r\n", buf, sizeof buf), 405);
    CHECK(strstr(buf, "Allow: POST"));
    /* a malformed request line: libmicrohttpd's own 400, and the server lives on */
    http(port, "GARBAGE\r\n\r\n", buf, sizeof buf);
    CHECK_INT(http(port, "GET /health HTTP/1.0\r\n\r\n", buf, sizeof buf), 503);

    struct fm_model *m = NULL;
    CHECK_INT(fm_open("tests/fixtures/of_mpt.safetensors", &m, &err), 0);
    if (m) {
        CHECK_INT(srv_ready(s, m, &err), 0);
        CHECK_INT(http(port, "GET /health HTTP/1.0\r\n\r\n", buf, sizeof buf), 200);
        CHECK(strstr(buf, "{\"status\":\"ok\"}"));
    }
    srv_stop(s, 1000);
    fm_close(m);
    CHECK(http(port, "GET /health HTTP/1.0\r\n\r\n", buf, sizeof buf) < 0); /* closed */
    mat_shutdown();
    return TEST_END();
}
