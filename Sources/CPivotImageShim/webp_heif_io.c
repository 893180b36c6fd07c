/* WebP (libwebp) and HEIF/HEIC/AVIF (libheif) decoding, WebP encoding. Both libraries return errors; nothing
   here longjmps. Files are size-checked against the limits before pixel memory is allocated. */
#include "internal.h"

#include <errno.h>
#include <libheif/heif.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <webp/decode.h>
#include <webp/demux.h>
#include <webp/encode.h>
#include <webp/mux.h>

/* The whole file in memory (at most 1 GiB), or NULL with a message. */
static uint8_t *read_file(const char *path, size_t *size, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        pv_set_error(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    uint8_t *data = NULL;
    size_t used = 0, capacity = 0;
    for (;;) {
        if (used == capacity) {
            if (capacity >= ((size_t)1 << 30)) {
                pv_set_error(err, errlen, "file larger than 1 GiB");
                free(data);
                fclose(f);
                return NULL;
            }
            capacity = capacity ? capacity * 2 : 65536;
            uint8_t *grown = realloc(data, capacity);
            if (grown == NULL) {
                pv_set_error(err, errlen, "out of memory");
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        size_t n = fread(data + used, 1, capacity - used, f);
        used += n;
        if (n == 0) break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        pv_set_error(err, errlen, "read error");
        free(data);
        return NULL;
    }
    *size = used;
    return data;
}

int pv_webp_read(const char *path, const pv_limits *limits, pv_image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t size = 0;
    uint8_t *data = read_file(path, &size, err, errlen);
    if (data == NULL) return PV_ERR_IO;
    WebPBitstreamFeatures features;
    if (WebPGetFeatures(data, size, &features) != VP8_STATUS_OK) {
        pv_set_error(err, errlen, "not a decodable WebP bitstream");
        free(data);
        return PV_ERR_CORRUPT;
    }
    if (features.has_animation) {
        pv_set_error(err, errlen, "animated WebP files are not supported");
        free(data);
        return PV_ERR_UNSUPPORTED;
    }
    int status = pv_check_size(features.width, features.height, limits, err, errlen);
    if (status != PV_OK) {
        free(data);
        return status;
    }
    int width = 0, height = 0;
    uint8_t *rgba = WebPDecodeRGBA(data, size, &width, &height);
    if (rgba == NULL || width != features.width || height != features.height) {
        pv_set_error(err, errlen, "truncated or corrupt WebP data");
        WebPFree(rgba);
        free(data);
        return PV_ERR_CORRUPT;
    }
    size_t bytes = (size_t)width * (size_t)height * 4;
    out->data = malloc(bytes);
    if (out->data == NULL) {
        WebPFree(rgba);
        free(data);
        pv_set_error(err, errlen, "out of memory");
        return PV_ERR_NOMEM;
    }
    memcpy(out->data, rgba, bytes);
    WebPFree(rgba);
    out->width = width;
    out->height = height;
    out->channels = 4;
    out->depth = 8;
    /* The ICC profile and EXIF chunks of an extended (VP8X) file. */
    WebPData whole = {data, size};
    WebPDemuxer *demux = WebPDemux(&whole);
    if (demux != NULL) {
        uint32_t flags = WebPDemuxGetI(demux, WEBP_FF_FORMAT_FLAGS);
        WebPChunkIterator chunk;
        if ((flags & ICCP_FLAG) && WebPDemuxGetChunk(demux, "ICCP", 1, &chunk)) {
            out->icc = malloc(chunk.chunk.size);
            if (out->icc != NULL) {
                memcpy(out->icc, chunk.chunk.bytes, chunk.chunk.size);
                out->icc_length = chunk.chunk.size;
            }
            WebPDemuxReleaseChunkIterator(&chunk);
        }
        if ((flags & EXIF_FLAG) && WebPDemuxGetChunk(demux, "EXIF", 1, &chunk)) {
            const uint8_t *p = chunk.chunk.bytes;
            size_t n = chunk.chunk.size;
            if (n >= 6 && memcmp(p, "Exif\0\0", 6) == 0) { p += 6; n -= 6; }
            out->exif = malloc(n ? n : 1);
            if (out->exif != NULL) {
                memcpy(out->exif, p, n);
                out->exif_length = n;
            }
            WebPDemuxReleaseChunkIterator(&chunk);
        }
        WebPDemuxDelete(demux);
    }
    free(data);
    return PV_OK;
}

int pv_webp_write(int fd, const uint8_t *rgb, int32_t width, int32_t height, int32_t quality, char *err, size_t errlen) {
    if (rgb == NULL || width <= 0 || height <= 0 || width > WEBP_MAX_DIMENSION || height > WEBP_MAX_DIMENSION) {
        pv_set_error(err, errlen, "invalid WebP size %dx%d (at most %d per side)", width, height, WEBP_MAX_DIMENSION);
        return PV_ERR_ARGUMENT;
    }
    uint8_t *encoded = NULL;
    size_t size = quality >= 100 ? WebPEncodeLosslessRGB(rgb, width, height, width * 3, &encoded)
                                 : WebPEncodeRGB(rgb, width, height, width * 3, (float)(quality < 1 ? 1 : quality), &encoded);
    if (size == 0 || encoded == NULL) {
        WebPFree(encoded);
        pv_set_error(err, errlen, "WebP encoding failed");
        return PV_ERR_NOMEM;
    }
    /* The samples are sRGB: say so with an ICCP chunk (an extended file), as JPEG and TIFF outputs do. */
    WebPData assembled = {encoded, size};
    WebPData tagged = {NULL, 0};
    size_t icc_length = 0;
    const uint8_t *icc = pv_srgb_profile(&icc_length);
    WebPMux *mux = icc ? WebPMuxNew() : NULL;
    if (mux) {
        WebPData image = {encoded, size}, profile = {icc, icc_length};
        if (WebPMuxSetImage(mux, &image, 0) == WEBP_MUX_OK && WebPMuxSetChunk(mux, "ICCP", &profile, 0) == WEBP_MUX_OK &&
            WebPMuxAssemble(mux, &tagged) == WEBP_MUX_OK) {
            assembled = tagged;
        }
        WebPMuxDelete(mux);
    }
    size_t done = 0;
    int status = PV_OK;
    while (done < assembled.size) {
        ssize_t n = write(fd, assembled.bytes + done, assembled.size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            pv_set_error(err, errlen, "write: %s", strerror(errno));
            status = PV_ERR_IO;
            break;
        }
        done += (size_t)n;
    }
    WebPDataClear(&tagged);
    WebPFree(encoded);
    return status;
}

static int heif_status(struct heif_error e) {
    switch (e.code) {
    case heif_error_Ok: return PV_OK;
    case heif_error_Input_does_not_exist: return PV_ERR_IO;
    case heif_error_Unsupported_filetype:
    case heif_error_Unsupported_feature:
    case heif_error_Decoder_plugin_error: return PV_ERR_UNSUPPORTED;
    case heif_error_Memory_allocation_error: return PV_ERR_NOMEM;
    default: return PV_ERR_CORRUPT;
    }
}

int pv_heif_read(const char *path, const pv_limits *limits, pv_image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    struct heif_context *ctx = heif_context_alloc();
    if (ctx == NULL) {
        pv_set_error(err, errlen, "out of memory");
        return PV_ERR_NOMEM;
    }
    struct heif_image_handle *handle = NULL;
    struct heif_image *image = NULL;
    int status = PV_OK;
    struct heif_error e = heif_context_read_from_file(ctx, path, NULL);
    if (e.code == heif_error_Ok) e = heif_context_get_primary_image_handle(ctx, &handle);
    if (e.code != heif_error_Ok) {
        pv_set_error(err, errlen, "%s", e.message ? e.message : "cannot read the file");
        status = heif_status(e);
        goto done;
    }
    /* The size after the file's rotation and mirroring, which decoding applies. */
    int width = heif_image_handle_get_width(handle), height = heif_image_handle_get_height(handle);
    status = pv_check_size(width, height, limits, err, errlen);
    if (status != PV_OK) goto done;
    int alpha = heif_image_handle_has_alpha_channel(handle);
    int bits = heif_image_handle_get_luma_bits_per_pixel(handle);
    int deep = bits > 8;
    enum heif_chroma chroma = deep ? (alpha ? heif_chroma_interleaved_RRGGBBAA_LE : heif_chroma_interleaved_RRGGBB_LE)
                                   : (alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB);
    e = heif_decode_image(handle, &image, heif_colorspace_RGB, chroma, NULL);
    if (e.code != heif_error_Ok) {
        pv_set_error(err, errlen, "%s", e.message ? e.message : "cannot decode the image");
        status = heif_status(e);
        goto done;
    }
    int stride = 0;
    const uint8_t *plane = heif_image_get_plane_readonly(image, heif_channel_interleaved, &stride);
    int w = heif_image_get_width(image, heif_channel_interleaved), h = heif_image_get_height(image, heif_channel_interleaved);
    int channels = alpha ? 4 : 3;
    if (plane == NULL || w != width || h != height || stride < w * channels * (deep ? 2 : 1)) {
        pv_set_error(err, errlen, "decoder returned an unexpected image");
        status = PV_ERR_CORRUPT;
        goto done;
    }
    size_t row = (size_t)w * (size_t)channels * (deep ? 2 : 1);
    out->data = malloc(row * (size_t)h);
    if (out->data == NULL) {
        pv_set_error(err, errlen, "out of memory");
        status = PV_ERR_NOMEM;
        goto done;
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *src = plane + (size_t)y * (size_t)stride;
        uint8_t *dst = out->data + (size_t)y * row;
        if (!deep) {
            memcpy(dst, src, row);
            continue;
        }
        /* Little-endian samples of `bits` bits, widened to the full 16-bit range. */
        uint32_t top = (1u << (bits > 16 ? 16 : bits)) - 1;
        for (size_t i = 0; i < (size_t)w * (size_t)channels; i++) {
            uint32_t v = (uint32_t)src[2 * i] | ((uint32_t)src[2 * i + 1] << 8);
            if (v > top) v = top;
            uint16_t wide = (uint16_t)((v * 65535u + top / 2) / top);
            memcpy(dst + 2 * i, &wide, 2);
        }
    }
    out->width = w;
    out->height = h;
    out->channels = channels;
    out->depth = deep ? 16 : 8;
    out->orientation = 1; /* rotation and mirroring are already applied */
    enum heif_color_profile_type type = heif_image_handle_get_color_profile_type(handle);
    if (type == heif_color_profile_type_prof || type == heif_color_profile_type_rICC) {
        size_t n = heif_image_handle_get_raw_color_profile_size(handle);
        if (n > 0 && n < (64u << 20)) {
            out->icc = malloc(n);
            if (out->icc != NULL && heif_image_handle_get_raw_color_profile(handle, out->icc).code == heif_error_Ok) {
                out->icc_length = n;
            } else {
                free(out->icc);
                out->icc = NULL;
            }
        }
    }
done:
    if (status != PV_OK) pv_image_free(out);
    if (image) heif_image_release(image);
    if (handle) heif_image_handle_release(handle);
    heif_context_free(ctx);
    return status;
}
