/* SPDX-License-Identifier: MIT */
/*
 * Records (docs/protocol.md): "@NVCT1 <seq> <KIND> key=value ... #<crc>".
 * A record is built in a buffer and written in one go, so that nothing
 * else can land in the middle of it.
 */
#include "kernel.h"

#define PREFIX   "@NVCT1"
/* Room for " #" and eight hex digits after the body. */
#define BODY_MAX (RECORD_MAX - 10)

static unsigned long next_seq;

/* CRC-32/ISO-HDLC (reflected, polynomial 0xEDB88320, init and final
 * xor 0xFFFFFFFF), as zlib.crc32 computes it; four bits at a time. */
uint32_t crc32(const void *data, size_t n)
{
    static const uint32_t nibble[16] = {
        0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
        0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
        0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
    };
    const uint8_t *p = data;
    uint32_t crc = 0xffffffff;

    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ nibble[crc & 15];
        crc = (crc >> 4) ^ nibble[crc & 15];
    }
    return ~crc;
}

static void append(struct record *r, const char *s, size_t n)
{
    memcpy(r->buf + r->len, s, n);
    r->len += n;
}

void record_begin(struct record *r, const char *kind)
{
    r->len = 0;
    r->truncated = false;
    r->len = (size_t)snprintf(r->buf, BODY_MAX, PREFIX " %lu %s", next_seq, kind);
}

static bool plain(uint8_t c) { return c > 0x20 && c < 0x7f && c != '%' && c != '#'; }

static size_t escaped_len(const char *v)
{
    size_t n = 0;

    for (; *v; v++)
        n += plain((uint8_t)*v) ? 1 : 3;
    return n;
}

static void append_escaped(struct record *r, uint8_t c)
{
    static const char hex[] = "0123456789ABCDEF";

    if (plain(c)) {
        r->buf[r->len++] = (char)c;
    } else {
        r->buf[r->len++] = '%';
        r->buf[r->len++] = hex[c >> 4];
        r->buf[r->len++] = hex[c & 15];
    }
}

bool record_field(struct record *r, const char *key, const char *value, bool truncate)
{
    size_t klen = strlen(key);
    size_t need = 1 + klen + 1 + escaped_len(value);

    if (r->len + need <= BODY_MAX) {
        append(r, " ", 1);
        append(r, key, klen);
        append(r, "=", 1);
        for (const char *v = value; *v; v++)
            append_escaped(r, (uint8_t)*v);
        return true;
    }
    /* Too long: keep what fits and mark the cut with "...". */
    if (!truncate || r->len + 1 + klen + 1 + 3 > BODY_MAX)
        return false;
    append(r, " ", 1);
    append(r, key, klen);
    append(r, "=", 1);
    for (const char *v = value; *v; v++) {
        size_t l = plain((uint8_t)*v) ? 1 : 3;
        if (r->len + l + 3 > BODY_MAX)
            break;
        append_escaped(r, (uint8_t)*v);
    }
    append(r, "...", 3);
    r->truncated = true;
    return true;
}

void record_fieldf(struct record *r, const char *key, const char *fmt, ...)
{
    char val[RECORD_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    record_field(r, key, val, true);
}

void record_emit(struct record *r)
{
    char tail[16];
    int n = snprintf(tail, sizeof(tail), " #%08x\r\n", crc32(r->buf, r->len));

    append(r, tail, (size_t)n);
    console_write(r->buf, r->len);
    next_seq++;
}
