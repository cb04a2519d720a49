/* SPDX-License-Identifier: MIT */
/*
 * The kernel command line: space-separated key=value words. Words without
 * '=' and unknown keys are ignored: QEMU puts the kernel's path first,
 * GRUB does not, and loaders may add words of their own.
 */
#include "kernel.h"

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The value of the last word "key=...", as Linux does with repeated keys. */
bool cmdline_get(const char *s, const char *key, char *val, size_t size)
{
    size_t klen = strlen(key);
    bool found = false;

    while (*s) {
        while (is_space(*s))
            s++;
        const char *w = s;
        while (*s && !is_space(*s))
            s++;
        size_t wlen = (size_t)(s - w);
        if (wlen > klen && w[klen] == '=' && memcmp(w, key, klen) == 0) {
            size_t n = wlen - klen - 1;
            if (n >= size)
                n = size - 1;
            memcpy(val, w + klen + 1, n);
            val[n] = 0;
            found = true;
        }
    }
    return found;
}

/* '*' matches any run of characters (dots included), '?' one character;
 * the glob must match the whole string. Backtracks only to the last '*',
 * which is enough for this kind of glob and never exponential. */
bool glob_match(const char *g, const char *s)
{
    const char *star = NULL, *resume = NULL;

    while (*s) {
        if (*g == '*') {
            star = g++;
            resume = s;
        } else if (*g == '?' || *g == *s) {
            g++;
            s++;
        } else if (star) {
            g = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*g == '*')
        g++;
    return *g == '\0';
}
