/* SPDX-License-Identifier: MIT */
/* What a probe reports: check(), note(), skip(), fail(), error(). */
#include "kernel.h"

struct probe_run *current_run;

/* vsnprintf(), marking a cut message with "..." as records do. */
static void format_msg(char *buf, size_t size, const char *fmt, va_list ap)
{
    if ((size_t)vsnprintf(buf, size, fmt, ap) >= size && size > 4)
        memcpy(buf + size - 4, "...", 4);
}

const char *verdict_name(enum verdict v)
{
    static const char *const names[] = {"PASS", "SKIP", "FAIL", "ERROR"};

    return names[v];
}

void run_note(struct probe_run *run, const char *msg)
{
    struct record r;

    if (run->notes >= MAX_NOTES)
        return;
    run->notes++;
    record_begin(&r, "NOTE");
    record_field(&r, "probe", run->probe->id, true);
    record_field(&r, "msg", msg, true);
    record_emit(&r);
}

/* The worst verdict wins; among equals, the first detail stays. */
void run_verdict(struct probe_run *run, enum verdict v, const char *detail)
{
    if (v <= run->verdict)
        return;
    run->verdict = v;
    strlcpy(run->detail, detail, sizeof(run->detail));
}

static struct probe_run *running(const char *what, const char *msg)
{
    if (!current_run)
        panic("%s outside a probe: %s", what, msg);
    return current_run;
}

bool check(bool cond, const char *fmt, ...)
{
    char msg[DETAIL_MAX];
    va_list ap;

    if (cond)
        return true;
    va_start(ap, fmt);
    format_msg(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct probe_run *run = running("check()", msg);
    run_note(run, msg);
    run_verdict(run, V_FAIL, msg);
    return false;
}

void note(const char *fmt, ...)
{
    char msg[DETAIL_MAX];
    va_list ap;

    va_start(ap, fmt);
    format_msg(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    run_note(running("note()", msg), msg);
}

static noreturn void end_probe(enum verdict v, const char *what, const char *fmt, va_list ap)
{
    char msg[DETAIL_MAX];

    format_msg(msg, sizeof(msg), fmt, ap);
    struct probe_run *run = running(what, msg);
    run_verdict(run, v, msg);
    jmp_restore(&run->end, 1);
}

void skip(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    end_probe(V_SKIP, "skip()", fmt, ap);
}

void fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    end_probe(V_FAIL, "fail()", fmt, ap);
}

void error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    end_probe(V_ERROR, "error()", fmt, ap);
}
