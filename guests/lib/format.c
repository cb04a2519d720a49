/* SPDX-License-Identifier: MIT */
/*
 * vsnprintf(): %d %i %u %x %X %o %p %s %c %%, length modifiers hh h l ll
 * z j t, flags - 0 # + space, width and precision (numbers or *).
 */
#include "kernel.h"

struct out {
    char *buf;
    size_t size, len; /* len counts every byte, stored or not */
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void pad(struct out *o, char c, int n)
{
    while (n-- > 0)
        put(o, c);
}

enum { F_LEFT = 1, F_ZERO = 2, F_ALT = 4, F_PLUS = 8, F_SPACE = 16 };

static void emit_number(struct out *o, unsigned long long v, bool neg, unsigned base, bool upper,
                        int flags, int width, int prec)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;
    const char *prefix = "";

    if (v == 0 && prec == 0)
        n = 0; /* "%.0d" of 0 prints nothing */
    else
        do {
            tmp[n++] = digits[v % base];
            v /= base;
        } while (v);

    if (neg)
        prefix = "-";
    else if (flags & F_PLUS)
        prefix = "+";
    else if (flags & F_SPACE)
        prefix = " ";
    if ((flags & F_ALT) && n && !(n == 1 && tmp[0] == '0')) {
        if (base == 16)
            prefix = upper ? "0X" : "0x";
        else if (base == 8)
            prefix = "0";
    }

    int zeros = prec > n ? prec - n : 0;
    int plen = (int)strlen(prefix);
    int total = plen + zeros + n;

    if (prec < 0 && (flags & F_ZERO) && !(flags & F_LEFT) && width > total) {
        zeros += width - total;
        total = width;
    }
    if (!(flags & F_LEFT))
        pad(o, ' ', width - total);
    for (const char *p = prefix; *p; p++)
        put(o, *p);
    pad(o, '0', zeros);
    while (n)
        put(o, tmp[--n]);
    if (flags & F_LEFT)
        pad(o, ' ', width - total);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = {buf, size, 0};

    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;

        int flags = 0;
        for (;; fmt++) {
            if (*fmt == '-')
                flags |= F_LEFT;
            else if (*fmt == '0')
                flags |= F_ZERO;
            else if (*fmt == '#')
                flags |= F_ALT;
            else if (*fmt == '+')
                flags |= F_PLUS;
            else if (*fmt == ' ')
                flags |= F_SPACE;
            else
                break;
        }

        int width = 0;
        if (*fmt == '*') {
            width = va_arg(ap, int);
            if (width < 0) {
                flags |= F_LEFT;
                width = -width;
            }
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9')
                width = width * 10 + (*fmt++ - '0');
        }

        int prec = -1;
        if (*fmt == '.') {
            fmt++;
            prec = 0;
            if (*fmt == '*') {
                prec = va_arg(ap, int);
                fmt++;
            } else {
                while (*fmt >= '0' && *fmt <= '9')
                    prec = prec * 10 + (*fmt++ - '0');
            }
        }

        int len = 0; /* 0: int, 1: long, 2: long long, -1: short, -2: char */
        for (;; fmt++) {
            if (*fmt == 'l')
                len = len >= 1 ? 2 : 1;
            else if (*fmt == 'h')
                len = len <= -1 ? -2 : -1;
            else if (*fmt == 'z' || *fmt == 'j' || *fmt == 't')
                len = 2; /* size_t, intmax_t, ptrdiff_t are 64-bit */
            else
                break;
        }

        switch (*fmt) {
        case 'd':
        case 'i': {
            long long v = len >= 2   ? va_arg(ap, long long)
                          : len == 1 ? va_arg(ap, long)
                                     : va_arg(ap, int);
            if (len == -1)
                v = (short)v;
            else if (len == -2)
                v = (signed char)v;
            unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
            emit_number(&o, u, v < 0, 10, false, flags, width, prec);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            unsigned long long v = len >= 2   ? va_arg(ap, unsigned long long)
                                   : len == 1 ? va_arg(ap, unsigned long)
                                              : va_arg(ap, unsigned int);
            if (len == -1)
                v = (unsigned short)v;
            else if (len == -2)
                v = (unsigned char)v;
            unsigned base = *fmt == 'u' ? 10 : *fmt == 'o' ? 8 : 16;
            emit_number(&o, v, false, base, *fmt == 'X', flags & ~(F_PLUS | F_SPACE), width, prec);
            break;
        }
        case 'p': {
            uintptr_t v = (uintptr_t)va_arg(ap, void *);
            emit_number(&o, v, false, 16, false, flags | F_ALT, width, prec);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            int n = 0;
            while (s[n] && (prec < 0 || n < prec))
                n++;
            if (!(flags & F_LEFT))
                pad(&o, ' ', width - n);
            for (int i = 0; i < n; i++)
                put(&o, s[i]);
            if (flags & F_LEFT)
                pad(&o, ' ', width - n);
            break;
        }
        case 'c':
            if (!(flags & F_LEFT))
                pad(&o, ' ', width - 1);
            put(&o, (char)va_arg(ap, int));
            if (flags & F_LEFT)
                pad(&o, ' ', width - 1);
            break;
        case '%': put(&o, '%'); break;
        case '\0':
            fmt--; /* a lone '%' at the end */
            break;
        default:
            /* Unknown conversion: print it as it was written. */
            put(&o, '%');
            put(&o, *fmt);
            break;
        }
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return (int)(o.len > 0x7fffffff ? 0x7fffffff : o.len);
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
