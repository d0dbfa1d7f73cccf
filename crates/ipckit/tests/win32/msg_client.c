/* A client that sets PIPE_READMODE_MESSAGE: sends each argument as one
 * message and reads one reply message per message, printing "reply LEN:TEXT".
 * usage: msg_client.exe \\.\pipe\NAME MSG... */
#include <windows.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) { printf("usage: msg_client PIPE MSG...\n"); return 2; }
    if (!WaitNamedPipeA(argv[1], 20000)) { printf("WaitNamedPipe: %lu\n", GetLastError()); return 1; }
    HANDLE h = CreateFileA(argv[1], GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (h == INVALID_HANDLE_VALUE) { printf("CreateFile: %lu\n", GetLastError()); return 1; }
    DWORD mode = PIPE_READMODE_MESSAGE;
    if (!SetNamedPipeHandleState(h, &mode, NULL, NULL)) { printf("SetNamedPipeHandleState: %lu\n", GetLastError()); return 1; }
    static char buf[1 << 20];
    for (int i = 2; i < argc; i++) {
        DWORD n = 0, len = 0;
        if (!WriteFile(h, argv[i], (DWORD)strlen(argv[i]), &n, NULL)) { printf("WriteFile: %lu\n", GetLastError()); return 1; }
        BOOL ok;
        do {
            ok = ReadFile(h, buf + len, 4096, &n, NULL);
            len += n;
        } while (!ok && GetLastError() == ERROR_MORE_DATA && len + 4096 <= sizeof buf);
        if (!ok) { printf("ReadFile: %lu\n", GetLastError()); return 1; }
        printf("reply %lu:%.*s\n", len, (int)len, buf);
    }
    CloseHandle(h);
    return 0;
}
