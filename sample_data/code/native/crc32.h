/*
 * crc32.h - CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320).
 *
 * Built as a shared library by `make native` and loaded from Python with ctypes.
 * The result is bit-for-bit identical to zlib's crc32() and to sprocket.checksum.crc32_py().
 */
#ifndef SPROCKET_CRC32_H
#define SPROCKET_CRC32_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Continue a running CRC over `len` bytes of `buf`. Start with crc = 0. */
uint32_t sprocket_crc32(uint32_t crc, const unsigned char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SPROCKET_CRC32_H */
