/* CreateMailslot, then ReadFile COUNT messages and print "msg LEN:TEXT".
 * usage: mailslot_reader.exe \\.\mailslot\NAME COUNT */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) { printf("usage: mailslot_reader SLOT COUNT\n"); return 2; }
    HANDLE s = CreateMailslotA(argv[1], 0, MAILSLOT_WAIT_FOREVER, NULL);
    if (s == INVALID_HANDLE_VALUE) { printf("CreateMailslot: %lu\n", GetLastError()); return 2; }
    printf("ready\n");
    fflush(stdout);
    static char buf[65536];
    for (int i = 0; i < atoi(argv[2]); i++) {
        DWORD n = 0;
        if (!ReadFile(s, buf, sizeof buf, &n, NULL)) { printf("ReadFile: %lu\n", GetLastError()); return 1; }
        printf("msg %lu:%.*s\n", n, (int)n, buf);
        fflush(stdout);
    }
    return 0;
}
