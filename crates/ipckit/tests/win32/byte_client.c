/* A classic named-pipe client: WaitNamedPipe, then CreateFile; writes TEXT,
 * reads back as many bytes, prints them, closes.
 * usage: byte_client.exe \\.\pipe\NAME TEXT */
#include <windows.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) { printf("usage: byte_client PIPE TEXT\n"); return 2; }
    HANDLE h;
    for (;;) {
        h = CreateFileA(argv[1], GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
        if (h != INVALID_HANDLE_VALUE) break;
        if (GetLastError() != ERROR_PIPE_BUSY) { printf("CreateFile: %lu\n", GetLastError()); return 1; }
        if (!WaitNamedPipeA(argv[1], 20000)) { printf("WaitNamedPipe: %lu\n", GetLastError()); return 1; }
    }
    DWORD len = (DWORD)strlen(argv[2]), n = 0, got = 0;
    if (!WriteFile(h, argv[2], len, &n, NULL) || n != len) { printf("WriteFile: %lu\n", GetLastError()); return 1; }
    char buf[4096];
    while (got < len) {
        if (!ReadFile(h, buf + got, sizeof buf - got, &n, NULL) || n == 0) { printf("ReadFile: %lu\n", GetLastError()); return 1; }
        got += n;
    }
    printf("echo %.*s\n", (int)got, buf);
    CloseHandle(h);
    return 0;
}
