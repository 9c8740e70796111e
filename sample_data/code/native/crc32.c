/*
 * crc32.c - slicing-by-4 CRC-32.
 *
 * The byte-at-a-time table version processes one byte per lookup. Slicing-by-4 keeps four
 * tables and consumes four bytes per step, which is roughly three times faster on the GPX
 * files we see (a few hundred kilobytes each) without any platform-specific instructions.
 */
#include "crc32.h"

#include <string.h>

static uint32_t table[4][256];
static int table_ready = 0;

static void build_tables(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int s = 1; s < 4; s++) {
            c = table[0][c & 0xFF] ^ (c >> 8);
            table[s][n] = c;
        }
    }
    table_ready = 1;
}

uint32_t sprocket_crc32(uint32_t crc, const unsigned char *buf, size_t len)
{
    if (!table_ready)
        build_tables();
    crc = ~crc;

    /* Byte-wise until the pointer is aligned, so the word loads below are aligned too. */
    while (len && ((uintptr_t)buf & 3)) {
        crc = table[0][(crc ^ *buf++) & 0xFF] ^ (crc >> 8);
        len--;
    }
    while (len >= 4) {
        uint32_t word;
        memcpy(&word, buf, 4); /* little-endian hosts only; see the README */
        crc ^= word;
        crc = table[3][crc & 0xFF] ^ table[2][(crc >> 8) & 0xFF] ^
              table[1][(crc >> 16) & 0xFF] ^ table[0][crc >> 24];
        buf += 4;
        len -= 4;
    }
    while (len--)
        crc = table[0][(crc ^ *buf++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

#ifdef SPROCKET_CRC32_MAIN
#include <stdio.h>

/* Self-test: cc -DSPROCKET_CRC32_MAIN crc32.c && ./a.out */
int main(void)
{
    const char *s = "The quick brown fox jumps over the lazy dog";
    uint32_t got = sprocket_crc32(0, (const unsigned char *)s, strlen(s));
    printf("%08x %s\n", got, got == 0x414FA339u ? "ok" : "MISMATCH");
    return got == 0x414FA339u ? 0 : 1;
}
#endif
