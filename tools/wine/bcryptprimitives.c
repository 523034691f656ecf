/*
 * A stand-in for Windows' bcryptprimitives.dll, for running Rust test binaries under wine < 9.
 *
 * Rust's standard library (1.78 and later) imports ProcessPrng from bcryptprimitives.dll to seed
 * HashMap keys; Debian 12's wine 8.0 has no such DLL, so every Rust executable fails to load
 * (status c0000135). This DLL exports that one function on top of advapi32's RtlGenRandom
 * (SystemFunction036), which wine has. tools/cross-check.sh builds it with mingw-w64 and copies it
 * into its private wine prefix; it is never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG: feed it in chunks. ProcessPrng is documented never to fail. */
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
