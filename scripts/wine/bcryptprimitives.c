/*
 * Stand-in bcryptprimitives.dll for testing under Wine 8.
 *
 * Rust's standard library on x86_64-pc-windows-gnu fills its random seeds
 * (HashMap keys, etc.) with ProcessPrng, imported from bcryptprimitives.dll.
 * Wine 8 ships no such DLL, so every Rust test binary fails to start. This
 * file provides just that one export, forwarding to RtlGenRandom, which Wine
 * implements in advapi32 under its real export name, SystemFunction036.
 *
 * Built and installed into the private Wine prefix by scripts/test-windows.sh:
 *
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll \
 *       bcryptprimitives.c -ladvapi32
 *
 * This is test scaffolding only; it is never shipped or used on real Windows.
 */

#include <windows.h>

/* RtlGenRandom. Declared here rather than through <ntsecapi.h>, whose
 * declaration depends on macros we do not need. */
__declspec(dllimport) BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData);
 * Documented as always succeeding (returns TRUE). */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* SystemFunction036 takes a 32-bit length; feed it in chunks. */
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk)) {
            /* Cannot happen in practice; ProcessPrng has no failure mode, so
             * stop the process rather than hand back predictable bytes. */
            RaiseFailFastException(NULL, NULL, 0);
        }
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)reserved;
    if (reason == DLL_PROCESS_ATTACH)
        DisableThreadLibraryCalls(instance);
    return TRUE;
}
