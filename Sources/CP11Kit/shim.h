#ifndef CP11KIT_SHIM_H
#define CP11KIT_SHIM_H
// The PKCS#11 (Cryptoki) header as p11-kit ships it (Debian's libp11-kit-dev), with the standard's
// CK_ names. Only the header: a module is loaded at run time by path (CPKCS11).
#include <p11-kit/pkcs11.h>
#endif
