/*
 * bcryptprimitives.dll shim for Wine < 8.13 (Debian 12 ships Wine 8.0).
 *
 * Rust >= 1.78 Windows binaries import ProcessPrng from bcryptprimitives.dll for their
 * random numbers (HashMap seeds, ...). Wine added that export in 8.13; older Wine refuses
 * to start the program. This DLL, placed beside the .exe (the application directory is
 * searched first), exports ProcessPrng over RtlGenRandom (advapi32's SystemFunction036).
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll processprng.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
