/* SPDX-License-Identifier: MIT */
/*
 * Guest code written in assembly, for SVM and VMX probes alike (svm.h and
 * vmx.h include this header).
 */
#ifndef NVCT_GUEST_H
#define NVCT_GUEST_H

/*
 * GUEST(name, "line", "line", ...)
 *
 * Guest code in .text whose symbol `name` is the address of exactly its
 * first instruction: no compiler prologue, nothing the compiler may move.
 * Each argument is one line of GNU assembly (AT&T syntax): an instruction,
 * a directive, or a label ("vmx_ic_vmcall_1:") that a probe declares with
 * extern const char vmx_ic_vmcall_1[] to check an exit's RIP against.
 * `name` is declared as void name(void) and stays local to the file. At
 * most 40 lines; longer guests keep a __asm__(".pushsection .text ...")
 * block of their own.
 *
 *     GUEST(vmx_ic_invd_guest, "invd", "vmcall", "ud2");
 */
#define GUEST(name, ...)                                             \
    void name(void);                                                 \
    __asm__(".pushsection .text\n.type " #name ", @function\n" #name \
            ":\n" NVCT_GUEST_LINES_(__VA_ARGS__) ".popsection\n")

/* NVCT_GUEST_LINES_("a", "b", ...) is "a\n" "b\n" ...: up to 40 lines. */
/* clang-format off */
#define NVCT_GL1(a) a "\n"
#define NVCT_GL2(a, ...) a "\n" NVCT_GL1(__VA_ARGS__)
#define NVCT_GL3(a, ...) a "\n" NVCT_GL2(__VA_ARGS__)
#define NVCT_GL4(a, ...) a "\n" NVCT_GL3(__VA_ARGS__)
#define NVCT_GL5(a, ...) a "\n" NVCT_GL4(__VA_ARGS__)
#define NVCT_GL6(a, ...) a "\n" NVCT_GL5(__VA_ARGS__)
#define NVCT_GL7(a, ...) a "\n" NVCT_GL6(__VA_ARGS__)
#define NVCT_GL8(a, ...) a "\n" NVCT_GL7(__VA_ARGS__)
#define NVCT_GL9(a, ...) a "\n" NVCT_GL8(__VA_ARGS__)
#define NVCT_GL10(a, ...) a "\n" NVCT_GL9(__VA_ARGS__)
#define NVCT_GL11(a, ...) a "\n" NVCT_GL10(__VA_ARGS__)
#define NVCT_GL12(a, ...) a "\n" NVCT_GL11(__VA_ARGS__)
#define NVCT_GL13(a, ...) a "\n" NVCT_GL12(__VA_ARGS__)
#define NVCT_GL14(a, ...) a "\n" NVCT_GL13(__VA_ARGS__)
#define NVCT_GL15(a, ...) a "\n" NVCT_GL14(__VA_ARGS__)
#define NVCT_GL16(a, ...) a "\n" NVCT_GL15(__VA_ARGS__)
#define NVCT_GL17(a, ...) a "\n" NVCT_GL16(__VA_ARGS__)
#define NVCT_GL18(a, ...) a "\n" NVCT_GL17(__VA_ARGS__)
#define NVCT_GL19(a, ...) a "\n" NVCT_GL18(__VA_ARGS__)
#define NVCT_GL20(a, ...) a "\n" NVCT_GL19(__VA_ARGS__)
#define NVCT_GL21(a, ...) a "\n" NVCT_GL20(__VA_ARGS__)
#define NVCT_GL22(a, ...) a "\n" NVCT_GL21(__VA_ARGS__)
#define NVCT_GL23(a, ...) a "\n" NVCT_GL22(__VA_ARGS__)
#define NVCT_GL24(a, ...) a "\n" NVCT_GL23(__VA_ARGS__)
#define NVCT_GL25(a, ...) a "\n" NVCT_GL24(__VA_ARGS__)
#define NVCT_GL26(a, ...) a "\n" NVCT_GL25(__VA_ARGS__)
#define NVCT_GL27(a, ...) a "\n" NVCT_GL26(__VA_ARGS__)
#define NVCT_GL28(a, ...) a "\n" NVCT_GL27(__VA_ARGS__)
#define NVCT_GL29(a, ...) a "\n" NVCT_GL28(__VA_ARGS__)
#define NVCT_GL30(a, ...) a "\n" NVCT_GL29(__VA_ARGS__)
#define NVCT_GL31(a, ...) a "\n" NVCT_GL30(__VA_ARGS__)
#define NVCT_GL32(a, ...) a "\n" NVCT_GL31(__VA_ARGS__)
#define NVCT_GL33(a, ...) a "\n" NVCT_GL32(__VA_ARGS__)
#define NVCT_GL34(a, ...) a "\n" NVCT_GL33(__VA_ARGS__)
#define NVCT_GL35(a, ...) a "\n" NVCT_GL34(__VA_ARGS__)
#define NVCT_GL36(a, ...) a "\n" NVCT_GL35(__VA_ARGS__)
#define NVCT_GL37(a, ...) a "\n" NVCT_GL36(__VA_ARGS__)
#define NVCT_GL38(a, ...) a "\n" NVCT_GL37(__VA_ARGS__)
#define NVCT_GL39(a, ...) a "\n" NVCT_GL38(__VA_ARGS__)
#define NVCT_GL40(a, ...) a "\n" NVCT_GL39(__VA_ARGS__)
#define NVCT_GNTH_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, \
                   _15, _16, _17, _18, _19, _20, _21, _22, _23, _24, _25, _26,   \
                   _27, _28, _29, _30, _31, _32, _33, _34, _35, _36, _37, _38,   \
                   _39, _40, n, ...) n
#define NVCT_GN_(...)                                                       \
    NVCT_GNTH_(__VA_ARGS__, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, \
               28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14,  \
               13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
#define NVCT_GCAT_(a, b) a##b
#define NVCT_GXCAT_(a, b) NVCT_GCAT_(a, b)
#define NVCT_GUEST_LINES_(...) NVCT_GXCAT_(NVCT_GL, NVCT_GN_(__VA_ARGS__))(__VA_ARGS__)
/* clang-format on */

#endif
