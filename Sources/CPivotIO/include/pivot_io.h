// Temporary files that must not outlive an interrupted process: atomic writes register their temporary
// file here, and SIGINT/SIGTERM/SIGHUP remove every registered file before the process dies.
#ifndef PIVOT_IO_H
#define PIVOT_IO_H

#ifdef __cplusplus
extern "C" {
#endif

/// Installs the signal handlers (once; later calls do nothing).
void pv_install_cleanup_handlers(void);
/// Registers a temporary file; returns a slot (>= 0) or -1 when the table is full or the path too long.
int pv_register_temp(const char *path);
/// Forgets a slot after the file was renamed or removed.
void pv_unregister_temp(int slot);
/// Removes every registered file now (what the signal handler does); returns how many were removed.
int pv_cleanup_temps(void);

#ifdef __cplusplus
}
#endif

#endif
