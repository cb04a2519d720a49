/* SPDX-License-Identifier: MIT */
/*
 * Exception dispatch: catch_fault() for the probes, the runner's hook for
 * exceptions nobody expected, and a last-resort report for everything else.
 */
#include "kernel.h"

struct catch_ctx {
    struct jmp_ctx jmp;
    struct fault fault;
    struct catch_ctx *prev;
};

/* The innermost armed catch_fault(); they nest through ->prev. */
static struct catch_ctx *catch_top;
struct unexpected_hook *unexpected_hook;
static int trap_depth;

static const char *const names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS",
    "#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE",  "#CP",
    "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

const char *vector_name(int vector)
{
    static char buf[16];

    if (vector >= 0 && vector < 32)
        return names[vector];
    snprintf(buf, sizeof(buf), "vector %d", vector);
    return buf;
}

const char *fault_str(const struct fault *f)
{
    /* A few buffers in rotation, so that two calls fit in one printf. */
    static char bufs[4][32];
    static unsigned next;
    char *b = bufs[next++ % ARRAY_SIZE(bufs)];

    if (!f || f->vector == NO_FAULT)
        return "none";
    if (f->has_error_code)
        snprintf(b, sizeof(bufs[0]), "%s(%#x)", vector_name(f->vector), f->error_code);
    else
        snprintf(b, sizeof(bufs[0]), "%s", vector_name(f->vector));
    return b;
}

static bool vector_has_error_code(uint64_t v)
{
    return v == DF_VECTOR || (v >= TS_VECTOR && v <= PF_VECTOR) || v == AC_VECTOR ||
           v == CP_VECTOR || v == 29 || v == 30;
}

static void fill_fault(struct fault *f, const struct trap_frame *tf)
{
    f->vector = (int)tf->vector;
    f->has_error_code = vector_has_error_code(tf->vector);
    f->error_code = f->has_error_code ? (uint32_t)tf->error_code : 0;
    f->rip = tf->rip;
    f->cr2 = tf->vector == PF_VECTOR ? read_cr2() : 0;
}

/*
 * Resume at jmp_restore(ctx, val) by rewriting the frame and returning
 * through IRET rather than jumping from the handler: IRET ends the NMI
 * blocking that delivering an NMI started (SDM Vol. 3A 6.7.1), and it
 * leaves whatever stack the exception was taken on (IST, RSP0).
 */
static void resume_at(struct trap_frame *tf, struct jmp_ctx *ctx, int val)
{
    tf->rip = (uint64_t)jmp_restore;
    tf->cs = KERNEL_CS;
    tf->rflags = 0x2; /* IF = 0, and no TF/AC/DF left behind */
    tf->rsp = ctx->rsp - 8;
    tf->ss = KERNEL_DS;
    tf->rdi = (uint64_t)ctx;
    tf->rsi = (uint64_t)val;
}

static noreturn void die(const struct trap_frame *tf, const char *why)
{
    struct fault f;

    fill_fault(&f, tf);
    panic("%s %s at rip=%#lx cs=%#lx rsp=%#lx rflags=%#lx cr2=%#lx", why, fault_str(&f), tf->rip,
          tf->cs, tf->rsp, tf->rflags, read_cr2());
}

void trap_dispatch(struct trap_frame *tf);
void trap_dispatch(struct trap_frame *tf)
{
    if (tf->vector == WATCHDOG_VECTOR) {
        watchdog_irq();
        return;
    }
    if (trap_depth++ > 0) {
        /* A fault while handling one: report it without any machinery. */
        raw_print("\r\nnvct: nested exception %lu at rip=%#lx while handling another\r\n",
                  tf->vector, tf->rip);
        machine_exit();
    }

    if (tf->vector < 32 && catch_top) {
        struct catch_ctx *c = catch_top;

        catch_top = c->prev;
        fill_fault(&c->fault, tf);
        resume_at(tf, &c->jmp, 1);
    } else if (tf->vector != DF_VECTOR && unexpected_hook) {
        /* A probe is running and did not expect this: its verdict. A #DF
         * is left to die(): the state that caused it is suspect. */
        struct unexpected_hook *h = unexpected_hook;

        unexpected_hook = NULL;
        catch_top = NULL;
        fill_fault(h->fault, tf);
        resume_at(tf, h->ctx, UNEXPECTED_FAULT);
    } else {
        die(tf, "unexpected exception");
    }
    trap_depth--;
}

void catch_reset(void) { catch_top = NULL; }

int catch_fault(void (*fn)(void *), void *arg, struct fault *f)
{
    struct catch_ctx c;

    c.fault.vector = NO_FAULT;
    c.fault.has_error_code = false;
    c.fault.error_code = 0;
    c.fault.rip = 0;
    c.fault.cr2 = 0;
    c.prev = catch_top;
    if (jmp_save(&c.jmp) == 0) {
        /* The compiler must not sink the store of catch_top past fn(). */
        __atomic_store_n(&catch_top, &c, __ATOMIC_SEQ_CST);
        fn(arg);
        __atomic_store_n(&catch_top, c.prev, __ATOMIC_SEQ_CST);
    }
    /* After a fault, trap_dispatch() has already unlinked c. */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (f)
        *f = c.fault;
    return c.fault.vector;
}

struct msr_op {
    uint32_t msr;
    uint64_t val;
};

static void do_rdmsr(void *p)
{
    struct msr_op *op = p;

    op->val = rdmsr(op->msr);
}

static void do_wrmsr(void *p)
{
    struct msr_op *op = p;

    wrmsr(op->msr, op->val);
}

int rdmsr_safe(uint32_t msr, uint64_t *val)
{
    struct msr_op op = {msr, 0};
    int v = catch_fault(do_rdmsr, &op, NULL);

    *val = v == NO_FAULT ? op.val : 0;
    return v;
}

int wrmsr_safe(uint32_t msr, uint64_t val)
{
    struct msr_op op = {msr, val};

    return catch_fault(do_wrmsr, &op, NULL);
}
