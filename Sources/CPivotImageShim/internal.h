/* Helpers shared by the codec files (not part of the module's public header). */
#ifndef PIVOT_IMAGE_INTERNAL_H
#define PIVOT_IMAGE_INTERNAL_H

#include "pivot_image.h"
#include <stdarg.h>
#include <stdio.h>

/* Formats a message into err (truncating), with line breaks and other control characters replaced by spaces. */
void pv_set_error(char *err, size_t errlen, const char *format, ...) __attribute__((format(printf, 3, 4)));
void pv_set_error_v(char *err, size_t errlen, const char *format, va_list args);

/* PV_OK when width x height is non-empty and within limits; otherwise PV_ERR_CORRUPT (zero size) or
   PV_ERR_TOO_LARGE with a message. */
int pv_check_size(int64_t width, int64_t height, const pv_limits *limits, char *err, size_t errlen);

/* A stdio stream over a duplicate of fd (so fclose leaves the caller's descriptor open), or NULL. */
FILE *pv_stream_for_fd(int fd, char *err, size_t errlen);

/* Flushes and closes a stream from pv_stream_for_fd; PV_OK or PV_ERR_IO with a message. */
int pv_close_stream(FILE *stream, char *err, size_t errlen);

#endif
