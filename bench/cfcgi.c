/*
 * cfcgi: the benchmark's ceiling, a FastCGI responder in C on Debian's libfcgi.
 *
 * It answers the harness's three requests the way bench/app.py does:
 *   .../hello   12 bytes "Hello world\n"
 *   .../big     122880 bytes, "0123456789abcdef" repeated
 *   .../upload  reads the whole body and answers its length in decimal
 * anything else gets 404.
 *
 *   cfcgi -s PATH [-b BACKLOG] [-t THREADS] [-n]
 *
 * -s  the unix socket to create and listen on (FCGX_OpenSocket)
 * -b  its accept queue length (default 4096)
 * -t  threads accepting and answering (default 1); each blocks in
 *     FCGX_Accept_r on the same socket.  There is deliberately no accept mutex
 *     (libfcgi's examples/threaded.c has one): with nginx's fastcgi_keep_conn a
 *     thread waits inside FCGX_Accept_r for the next request on its kept
 *     connection, and holding a mutex there would stall every other thread.
 *     Linux needs no accept serialisation.
 * -n  no lingering close.  FCGX_Finish_r() ends a request that is not
 *     kept alive with shutdown(SHUT_WR) and then polls, up to 2 s, until the
 *     web server closes its side; a single-threaded responder idles meanwhile.
 *     FCGX_Detach() before FCGX_Finish_r() turns that into a plain close().
 *
 * SIGTERM/SIGINT end the process: every thread blocks them and the main
 * thread waits for them in sigwait().
 *
 * Build: gcc -O2 -o cfcgi cfcgi.c -lfcgi -lpthread
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BIG_SIZE 122880

static const char HELLO_HEAD[] =
    "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n"
    "Hello world\n";
static const char BIG_HEAD[] =
    "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 122880\r\n\r\n";
static const char NOT_FOUND[] =
    "Status: 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n"
    "not found\n";

static char big_body[BIG_SIZE];
static int listen_fd;
static int no_linger;

/* The last path segment of REQUEST_URI, without a query. */
static int route_is(const char *uri, const char *name) {
    const char *end = strchr(uri, '?');
    size_t len = end ? (size_t)(end - uri) : strlen(uri);
    size_t n = strlen(name);
    return len >= n && strncmp(uri + len - n, name, n) == 0 &&
           (len == n || uri[len - n - 1] == '/');
}

static void answer(FCGX_Request *req) {
    const char *uri = FCGX_GetParam("REQUEST_URI", req->envp);
    if (uri == NULL) uri = "";
    if (route_is(uri, "hello")) {
        FCGX_PutStr(HELLO_HEAD, sizeof HELLO_HEAD - 1, req->out);
    } else if (route_is(uri, "big")) {
        FCGX_PutStr(BIG_HEAD, sizeof BIG_HEAD - 1, req->out);
        FCGX_PutStr(big_body, BIG_SIZE, req->out);
    } else if (route_is(uri, "upload")) {
        char buf[65536];
        long total = 0;
        int got;
        while ((got = FCGX_GetStr(buf, sizeof buf, req->in)) > 0) total += got;
        char body[32];
        int blen = snprintf(body, sizeof body, "%ld", total);
        FCGX_FPrintF(req->out,
                     "Status: 200 OK\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     blen, body);
    } else {
        FCGX_PutStr(NOT_FOUND, sizeof NOT_FOUND - 1, req->out);
    }
}

static void *serve(void *unused) {
    (void)unused;
    FCGX_Request req;
    if (FCGX_InitRequest(&req, listen_fd, 0) != 0) return NULL;
    while (FCGX_Accept_r(&req) >= 0) {
        answer(&req);
        if (no_linger) FCGX_Detach(&req);
        FCGX_Finish_r(&req);
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int backlog = 4096, threads = 1, opt;
    while ((opt = getopt(argc, argv, "s:b:t:n")) != -1) {
        switch (opt) {
        case 's': path = optarg; break;
        case 'b': backlog = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'n': no_linger = 1; break;
        default: path = NULL; optind = argc; break;
        }
    }
    if (path == NULL || threads < 1) {
        fprintf(stderr, "usage: %s -s SOCKET [-b BACKLOG] [-t THREADS] [-n]\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < BIG_SIZE; i++) big_body[i] = "0123456789abcdef"[i % 16];

    if (FCGX_Init() != 0) return 1;
    unlink(path);
    listen_fd = FCGX_OpenSocket(path, backlog);
    if (listen_fd < 0) {
        perror("FCGX_OpenSocket");
        return 1;
    }

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* inherited by every thread */
    for (int i = 0; i < threads; i++) {
        pthread_t tid;
        if (pthread_create(&tid, NULL, serve, NULL) != 0) {
            perror("pthread_create");
            return 1;
        }
        pthread_detach(tid);
    }
    int sig;
    sigwait(&stop, &sig);
    unlink(path);
    return 0;
}
