/*
 * A stand-in for Windows' bcryptprimitives.dll, for running Rust test binaries under Wine 8,
 * which lacks the DLL. Rust's standard library (1.78+) imports ProcessPrng from it to seed
 * its hash maps. This shim fills the buffer from advapi32's RtlGenRandom (exported as
 * SystemFunction036), which Wine implements. Test use only: built by .ci/platforms.sh and
 * copied next to the test executables, never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a 32-bit length: feed it in chunks. */
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
