#!/usr/bin/env bash
# Makes every file in tests/vectors/ with the openssl CLI (see README.md beside this script).
# Stand-ins only: the real Gigaset CA certificates are not public. Validity 7300 days (20 years),
# so the checked-in files do not expire under the tests. Run from tests/vectors/.
set -euo pipefail
DAYS=7300
GIGASET_NET="/C=DE/ST=Germany/L=Bocholt/O=Gigaset Communications GmbH/OU=Certificate Authority/CN=Gigaset.net"
CA_EXT=(-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign")
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth,serverAuth\n' > device-rsa.ext
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\n' > device-ec.ext
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' > sub-ca.ext

# 1. Gigaset.net CA stand-in (factory certificates), RSA 2048, self-signed
openssl req -x509 -newkey rsa:2048 -nodes -keyout gigaset-net-ca.key -subj "$GIGASET_NET" \
  -days $DAYS -sha256 "${CA_EXT[@]}" -out gigaset-net-ca.pem

# 2. Gigaset Technologies stand-ins (>= 2.61): an ECDSA P-384 root and a P-256 device CA under it
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout gigaset-tech-root.key \
  -subj "/C=DE/L=Bocholt/O=Gigaset Technologies GmbH/CN=Gigaset Technologies Root CA" \
  -days $DAYS -sha384 "${CA_EXT[@]}" -out gigaset-tech-root.pem
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout gigaset-tech-device-ca.key \
  -subj "/C=DE/L=Bocholt/O=Gigaset Technologies GmbH/CN=Gigaset Technologies Device CA" -out gigaset-tech-device-ca.csr
openssl x509 -req -in gigaset-tech-device-ca.csr -CA gigaset-tech-root.pem -CAkey gigaset-tech-root.key \
  -set_serial 0x1002 -days $DAYS -sha384 -extfile sub-ca.ext -out gigaset-tech-device-ca.pem

# 3. Factory certificate with the generic CN=Einstein2 (subject exactly as in the FAQ), RSA 2048
openssl req -new -newkey rsa:2048 -nodes -keyout factory-einstein2.key \
  -subj "/C=DE/ST=DE/L=Bocholt/O=Gigaset Communications GmbH/OU=PRO/CN=Einstein2" -out factory-einstein2.csr
openssl x509 -req -in factory-einstein2.csr -CA gigaset-net-ca.pem -CAkey gigaset-net-ca.key \
  -set_serial 0x2001 -days $DAYS -sha256 -extfile device-rsa.ext -out factory-einstein2.pem

# 4. Factory certificate with CN=<MAC>, RSA 2048 (subject as in the FAQ's second example)
openssl req -new -newkey rsa:2048 -nodes -keyout factory-mac.key \
  -subj "/C=DE/ST=Germany/L=Bocholt/O=Gigaset Communications GmbH/CN=7C2F80C6E5C2" -out factory-mac.csr
openssl x509 -req -in factory-mac.csr -CA gigaset-net-ca.pem -CAkey gigaset-net-ca.key \
  -set_serial 0x2002 -days $DAYS -sha256 -extfile device-rsa.ext -out factory-mac.pem

# 5. >= 2.61 device certificate: ECDSA P-256 under the Gigaset Technologies device CA
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout technologies-p256.key \
  -subj "/C=DE/O=Gigaset Technologies GmbH/CN=7C2F80C6E5C3" -out technologies-p256.csr
openssl x509 -req -in technologies-p256.csr -CA gigaset-tech-device-ca.pem -CAkey gigaset-tech-device-ca.key \
  -set_serial 0x3001 -days $DAYS -sha256 -extfile device-ec.ext -out technologies-p256.pem

# 6. An old factory certificate signed with SHA-1 (refused by device software >= 2.57)
openssl req -new -newkey rsa:2048 -nodes -keyout factory-sha1.key \
  -subj "/C=DE/ST=Germany/L=Bocholt/O=Gigaset Communications GmbH/CN=7C2F80C6E5C4" -out factory-sha1.csr
openssl x509 -req -in factory-sha1.csr -CA gigaset-net-ca.pem -CAkey gigaset-net-ca.key \
  -set_serial 0x2003 -days $DAYS -sha1 -extfile device-rsa.ext -out factory-sha1.pem

# 7. A device certificate from a CA nobody listed
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout unlisted-ca.key \
  -subj "/C=US/O=Some Other Vendor/CN=Unlisted Device CA" -days $DAYS -sha256 "${CA_EXT[@]}" -out unlisted-ca.pem
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout unlisted-device.key \
  -subj "/CN=7C2F80C6E5C5" -out unlisted-device.csr
openssl x509 -req -in unlisted-device.csr -CA unlisted-ca.pem -CAkey unlisted-ca.key \
  -set_serial 0x4001 -days $DAYS -sha256 -extfile device-ec.ext -out unlisted-device.pem

rm -f ./*.csr ./*.ext ./*-ca.key gigaset-tech-root.key  # CA keys are not needed by the tests
