/* test_mqtt.c -- mqtt_set_nodelay: TCP_NODELAY on the sockets connected to
 * the broker's address only (loopback sockets, no broker needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "mqtt.h"

/* A listener on 127.0.0.1 at a free port; its port in *port. */
static int listener(int *port) {
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int connect_to(int port) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static int nodelay(int fd) {
    int v = -1;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    return v;
}

/* A "broker" and an "other server" (say Redis): only the client socket
 * connected to the broker gets TCP_NODELAY; the other client and the
 * accepted sockets keep theirs. */
static void test_nodelay_broker_only(void **state) {
    int bport, oport;
    char uri[64];
    (void)state;
    int bl = listener(&bport), ol = listener(&oport);
    int toward_broker = connect_to(bport), toward_other = connect_to(oport);
    int accepted = accept(bl, NULL, NULL);
    assert_true(accepted >= 0);
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", bport);
    assert_int_equal(mqtt_set_nodelay(uri), 1);
    assert_int_equal(nodelay(toward_broker), 1);
    assert_int_equal(nodelay(toward_other), 0);
    assert_int_equal(nodelay(accepted), 0);
    snprintf(uri, sizeof(uri), "mqtt://localhost:%d", oport);
    assert_true(mqtt_set_nodelay(uri) >= 1);      /* localhost resolves */
    assert_int_equal(nodelay(toward_other), 1);
    assert_int_equal(mqtt_set_nodelay("tcp://no.such.host.invalid:1883"), -1);
    assert_int_equal(mqtt_set_nodelay("tcp://[::1"), -1);
    close(accepted); close(toward_broker); close(toward_other); close(bl); close(ol);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nodelay_broker_only),
    };
    return cmocka_run_group_tests_name("mqtt", tests, NULL, NULL);
}
