// Async-signal-safe removal of registered temporary files: the table is fixed-size, slots are claimed
// with atomic compare-and-swap, and the handler only calls unlink, signal and raise.
#include "pivot_io.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define PV_SLOTS 64
#define PV_PATH 4096

static char paths[PV_SLOTS][PV_PATH];
static atomic_int used[PV_SLOTS];
static atomic_int installed;

static void handler(int sig) {
    pv_cleanup_temps();
    signal(sig, SIG_DFL);
    raise(sig);
}

void pv_install_cleanup_handlers(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&installed, &expected, 1)) return;
    int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = handler;
        sigemptyset(&sa.sa_mask);
        struct sigaction old;
        // Leave a signal alone when it was ignored on purpose (e.g. nohup).
        if (sigaction(signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(signals[i], &sa, NULL);
    }
}

int pv_register_temp(const char *path) {
    size_t n = strlen(path);
    if (n >= PV_PATH) return -1;
    for (int i = 0; i < PV_SLOTS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&used[i], &expected, 2)) {  // 2: being written
            memcpy(paths[i], path, n + 1);
            atomic_store(&used[i], 1);
            return i;
        }
    }
    return -1;
}

void pv_unregister_temp(int slot) {
    if (slot >= 0 && slot < PV_SLOTS) atomic_store(&used[slot], 0);
}

int pv_cleanup_temps(void) {
    int removed = 0;
    for (int i = 0; i < PV_SLOTS; i++) {
        if (atomic_load(&used[i]) == 1 && unlink(paths[i]) == 0) removed++;
    }
    return removed;
}
