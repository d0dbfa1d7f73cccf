/* A classic overlapped, multi-instance, byte-mode named-pipe echo server, as
 * the Win32 samples write it: INSTANCES instances created up front, each with
 * ConnectNamedPipe on its own event, WaitForMultipleObjects over the events.
 * A connected client's bytes are echoed back until it disconnects; then that
 * instance is disconnected and listens again.
 *
 * usage: byte_server.exe \\.\pipe\NAME CLIENTS
 * Prints "ready" once every instance listens, "served N" after CLIENTS
 * clients have come and gone, and exits 0. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>

#define INSTANCES 4
#define BUF 4096

typedef struct {
    HANDLE pipe;
    OVERLAPPED ov;
    BOOL connected;
} Instance;

static void listen_again(Instance *in) {
    in->connected = FALSE;
    ResetEvent(in->ov.hEvent);
    if (ConnectNamedPipe(in->pipe, &in->ov)) {
        SetEvent(in->ov.hEvent);
        return;
    }
    DWORD e = GetLastError();
    if (e == ERROR_PIPE_CONNECTED) SetEvent(in->ov.hEvent);
    else if (e != ERROR_IO_PENDING) { printf("ConnectNamedPipe: %lu\n", e); exit(2); }
}

/* Echoes one client until it disconnects (blocking overlapped I/O). */
static void serve(Instance *in) {
    char buf[BUF];
    for (;;) {
        DWORD n = 0;
        ResetEvent(in->ov.hEvent);
        if (!ReadFile(in->pipe, buf, BUF, NULL, &in->ov) && GetLastError() != ERROR_IO_PENDING) break;
        if (!GetOverlappedResult(in->pipe, &in->ov, &n, TRUE)) break;
        DWORD off = 0;
        while (off < n) {
            DWORD w = 0;
            ResetEvent(in->ov.hEvent);
            if (!WriteFile(in->pipe, buf + off, n - off, NULL, &in->ov) && GetLastError() != ERROR_IO_PENDING) return;
            if (!GetOverlappedResult(in->pipe, &in->ov, &w, TRUE)) return;
            off += w;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 3) { printf("usage: byte_server PIPE CLIENTS\n"); return 2; }
    int clients = atoi(argv[2]);
    Instance ins[INSTANCES];
    HANDLE events[INSTANCES];
    for (int i = 0; i < INSTANCES; i++) {
        ins[i].pipe = CreateNamedPipeA(argv[1], PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                                       PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT,
                                       INSTANCES, BUF, BUF, 0, NULL);
        if (ins[i].pipe == INVALID_HANDLE_VALUE) { printf("CreateNamedPipe: %lu\n", GetLastError()); return 2; }
        ZeroMemory(&ins[i].ov, sizeof ins[i].ov);
        ins[i].ov.hEvent = events[i] = CreateEventA(NULL, TRUE, FALSE, NULL);
        listen_again(&ins[i]);
    }
    printf("ready\n");
    fflush(stdout);
    int served = 0;
    while (served < clients) {
        DWORD w = WaitForMultipleObjects(INSTANCES, events, FALSE, INFINITE);
        if (w >= WAIT_OBJECT_0 + INSTANCES) { printf("wait: %lu\n", GetLastError()); return 2; }
        Instance *in = &ins[w - WAIT_OBJECT_0];
        serve(in);
        DisconnectNamedPipe(in->pipe);
        served++;
        listen_again(in);
    }
    printf("served %d\n", served);
    return 0;
}
