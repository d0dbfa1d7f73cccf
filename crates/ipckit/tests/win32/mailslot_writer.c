/* CreateFile on \\.\mailslot\NAME, then one WriteFile per argument.
 * usage: mailslot_writer.exe \\.\mailslot\NAME MSG... */
#include <windows.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) { printf("usage: mailslot_writer SLOT MSG...\n"); return 2; }
    HANDLE h = CreateFileA(argv[1], GENERIC_WRITE, FILE_SHARE_READ, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) { printf("CreateFile: %lu\n", GetLastError()); return 1; }
    for (int i = 2; i < argc; i++) {
        DWORD n = 0;
        if (!WriteFile(h, argv[i], (DWORD)strlen(argv[i]), &n, NULL)) { printf("WriteFile: %lu\n", GetLastError()); return 1; }
    }
    printf("sent %d\n", argc - 2);
    CloseHandle(h);
    return 0;
}
