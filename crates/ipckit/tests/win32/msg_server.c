/* A PIPE_TYPE_MESSAGE server: one instance, one client; every message is read
 * whole (ERROR_MORE_DATA parts joined) and sent back upper-cased as one
 * message, until the client disconnects.
 * usage: msg_server.exe \\.\pipe\NAME
 * Prints "ready", then "got LEN:TEXT" per message, "done N" at the end. */
#include <windows.h>
#include <stdio.h>
#include <ctype.h>

int main(int argc, char **argv) {
    if (argc != 2) { printf("usage: msg_server PIPE\n"); return 2; }
    HANDLE p = CreateNamedPipeA(argv[1], PIPE_ACCESS_DUPLEX,
                                PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT,
                                1, 4096, 4096, 0, NULL);
    if (p == INVALID_HANDLE_VALUE) { printf("CreateNamedPipe: %lu\n", GetLastError()); return 2; }
    printf("ready\n");
    fflush(stdout);
    if (!ConnectNamedPipe(p, NULL) && GetLastError() != ERROR_PIPE_CONNECTED) { printf("ConnectNamedPipe: %lu\n", GetLastError()); return 2; }
    static char msg[1 << 20];
    int count = 0;
    for (;;) {
        DWORD len = 0, n = 0;
        BOOL ok;
        do {
            ok = ReadFile(p, msg + len, 4096, &n, NULL);
            len += n;
        } while (!ok && GetLastError() == ERROR_MORE_DATA && len + 4096 <= sizeof msg);
        if (!ok) break;
        printf("got %lu:%.*s\n", len, (int)len, msg);
        fflush(stdout);
        for (DWORD i = 0; i < len; i++) msg[i] = (char)toupper((unsigned char)msg[i]);
        if (!WriteFile(p, msg, len, &n, NULL)) break;
        count++;
    }
    printf("done %d\n", count);
    return 0;
}
