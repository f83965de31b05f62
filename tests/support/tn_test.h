/**
 * @file tn_test.h
 * @brief Shared helpers for unit and integration tests (cmocka, temp dirs, ports, processes).
 *
 * Every timeout in a test goes through tn_test_timeout_ms(), which multiplies by
 * TN_TEST_TIMEOUT_MULT (set by tests/run.sh for sanitizer runs).
 */
#ifndef TN_TEST_H
#define TN_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first. */
#include <cmocka.h>

#include <stdio.h>
#include <sys/types.h>

/** @brief @p ms scaled by TN_TEST_TIMEOUT_MULT. */
int64_t tn_test_timeout_ms(int64_t ms);
/** @brief A fresh temp directory (removed by tn_test_rmdir unless TEST_LEAVE=1). Caller frees. */
char *tn_test_mkdtemp(const char *tag);
/** @brief Remove a temp directory tree, unless TEST_LEAVE=1. */
void tn_test_rmdir(const char *dir);
/** @brief A TCP port on 127.0.0.1 that was free a moment ago. */
int tn_test_free_port(void);
/** @brief Write @p data to @p path (creating or truncating). @returns 0 or -1. */
int tn_test_write_file(const char *path, const char *data);
/** @brief Read a whole file. Caller frees. NULL on error. */
char *tn_test_read_file(const char *path, size_t *len);
/**
 * @brief Run a shell command, capture stdout (and stderr when @p merge_stderr).
 * @returns the exit status (or -1), *out (caller frees) holds the output.
 */
int tn_test_run(const char *cmd, char **out, int merge_stderr);
/** @brief Start argv in the background with stdout/stderr to @p logfile. @returns pid or -1. */
pid_t tn_test_spawn(char *const argv[], const char *logfile);
/** @brief SIGTERM @p pid and wait up to @p ms; SIGKILL after. @returns the exit status or -1. */
int tn_test_stop(pid_t pid, int64_t ms);
/** @brief Path of a built program ("bin/taina-devstack") under the build dir. Caller frees. */
char *tn_test_build_path(const char *rel);
/** @brief Poll until @p path exists and is non-empty, up to @p ms. @returns 0 or -1. */
int tn_test_wait_file(const char *path, int64_t ms);

#endif
