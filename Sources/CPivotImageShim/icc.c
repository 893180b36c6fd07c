/* ICC colour management with Little CMS: decoded RGB samples are converted from the file's profile to sRGB. */
#include "internal.h"

#include <lcms2.h>
#include <stdlib.h>
#include <string.h>

static void quiet(cmsContext context, cmsUInt32Number code, const char *text) {
    (void)context;
    (void)code;
    (void)text;
}

int pv_icc_to_srgb(pv_image *image, int32_t *converted, char *err, size_t errlen) {
    *converted = 0;
    if (image == NULL || image->icc == NULL || image->icc_length == 0 || image->data == NULL) return PV_OK;
    if (image->channels != 3 && image->channels != 4) return PV_OK; /* grey: left as it is */
    cmsSetLogErrorHandler(quiet);
    cmsHPROFILE source = cmsOpenProfileFromMem(image->icc, (cmsUInt32Number)image->icc_length);
    if (source == NULL) return PV_OK; /* an unreadable profile: the samples are taken as sRGB */
    if (cmsGetColorSpace(source) != cmsSigRgbData) {
        cmsCloseProfile(source);
        return PV_OK;
    }
    cmsHPROFILE srgb = cmsCreate_sRGBProfile();
    if (srgb == NULL) {
        cmsCloseProfile(source);
        pv_set_error(err, errlen, "cannot create the sRGB profile");
        return PV_ERR_NOMEM;
    }
    int alpha = image->channels == 4, deep = image->depth == 16;
    cmsUInt32Number format = deep ? (alpha ? TYPE_RGBA_16 : TYPE_RGB_16) : (alpha ? TYPE_RGBA_8 : TYPE_RGB_8);
    cmsHTRANSFORM transform =
        cmsCreateTransform(source, format, srgb, format, INTENT_PERCEPTUAL, alpha ? cmsFLAGS_COPY_ALPHA : 0);
    cmsCloseProfile(source);
    cmsCloseProfile(srgb);
    if (transform == NULL) return PV_OK; /* a profile lcms cannot use: the samples are taken as sRGB */
    size_t pixels = (size_t)image->width * (size_t)image->height;
    cmsDoTransform(transform, image->data, image->data, (cmsUInt32Number)pixels);
    cmsDeleteTransform(transform);
    *converted = 1;
    return PV_OK;
}
