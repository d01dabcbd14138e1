#!/usr/bin/env bash
# Makes every CSR in tests/vectors/csr/ with the openssl CLI (see ../README.md, "CSRs for the
# policy tests"). The keys are deleted afterwards: the policy reads only the CSR. Run from
# tests/vectors/csr/.
set -euo pipefail
MAC=7C2F80C6E5C2

key() {  # key FILE KIND: a private key made by openssl
  case "$2" in
    p256) openssl ecparam -genkey -name prime256v1 -noout -out "$1" ;;
    p384) openssl ecparam -genkey -name secp384r1 -noout -out "$1" ;;
    p521) openssl ecparam -genkey -name secp521r1 -noout -out "$1" ;;
    k256) openssl ecparam -genkey -name secp256k1 -noout -out "$1" ;;
    rsa*) openssl genpkey -quiet -algorithm RSA -pkeyopt "rsa_keygen_bits:${2#rsa}" -out "$1" ;;
    ed25519) openssl genpkey -quiet -algorithm ed25519 -out "$1" ;;
    dsa2048)
      openssl genpkey -quiet -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out dsa.params
      openssl genpkey -quiet -paramfile dsa.params -out "$1"
      rm dsa.params ;;
  esac
}

key p256.key p256
key p384.key p384
key rsa2048.key rsa2048

# accepted: CN is a MAC in any common spelling, an allowed key and a SHA-2 signature
openssl req -new -sha256 -key p256.key -subj "/CN=$MAC" -out ok-p256-sha256.csr
openssl req -new -sha384 -key p384.key -subj "/CN=7c:2f:80:c6:e5:c2" -out ok-p384-sha384.csr
openssl req -new -sha256 -key rsa2048.key -subj "/CN=7C-2F-80-C6-E5-C2" -out ok-rsa2048-sha256.csr
openssl req -new -sha512 -key rsa2048.key -sigopt rsa_padding_mode:pss -subj "/CN=7c2f.80c6.e5c2" \
  -out ok-rsa2048-pss-sha512.csr
openssl req -in ok-p256-sha256.csr -outform DER -out ok-p256-sha256.der
sed 's/CERTIFICATE REQUEST-----/NEW CERTIFICATE REQUEST-----/' ok-p256-sha256.csr > ok-new-pem-label.csr
# the README's (and the Gigaset FAQ's) two commands, as they stand: default digest (SHA-256)
openssl genrsa -out N870-rsa.key 4096
openssl req -new -key N870-rsa.key -subj "/CN=$MAC" -out faq-n870-rsa4096.csr
openssl ecparam -genkey -name prime256v1 -out N870-ec.key
openssl req -new -key N870-ec.key -subj "/CN=$MAC" -out faq-n870-p256.csr
# what a CSR asks for beyond its key and names is ignored by policy (the profile decides); its SAN
# spells the MAC another way (every CN and SAN name must be the same MAC, RFC 8555 section 7.4)
openssl req -new -sha256 -key p256.key -subj "/O=Evil/CN=$MAC" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "subjectAltName=DNS:7c2f.80c6.e5c2" \
  -out ok-asks-for-ca.csr

# refused: signature algorithm
openssl req -new -sha1 -key rsa2048.key -subj "/CN=$MAC" -out sha1-rsa2048.csr
openssl req -new -sha1 -key p256.key -subj "/CN=$MAC" -out sha1-p256.csr
openssl req -new -md5 -key rsa2048.key -subj "/CN=$MAC" -out md5-rsa2048.csr

# refused: key type and size
for kind in rsa1024 p521 k256 ed25519 dsa2048; do
  key "$kind.key" "$kind"
  if [ "$kind" = ed25519 ]; then digest=(); else digest=(-sha256); fi
  openssl req -new "${digest[@]}" -key "$kind.key" -subj "/CN=$MAC" -out "key-$kind.csr"
done

# refused: the CN does not identify one device
cn() { openssl req -new -sha256 -key p256.key -subj "$2" -out "$1"; }
cn cn-einstein2.csr "/C=DE/O=Gigaset Communications GmbH/OU=PRO/CN=Einstein2"
cn cn-missing.csr "/O=Gigaset Communications GmbH"
cn cn-twice.csr "/CN=$MAC/CN=7C2F80C6E5C3"
cn cn-zero-mac.csr "/CN=00:00:00:00:00:00"
cn cn-broadcast-mac.csr "/CN=ff-ff-ff-ff-ff-ff"
cn cn-multicast-mac.csr "/CN=01:00:5E:00:00:FB"
cn cn-hostname.csr "/CN=provisioning.example.com"
cn cn-short-mac.csr "/CN=7C2F80C6E5"

# refused: the signature does not verify (one bit of the signature value flipped, 3 octets from
# the end: inside the ECDSA s INTEGER, so the DER still parses)
openssl req -in ok-p256-sha256.csr -outform DER -out broken.der
offset=$(( $(stat -c %s broken.der) - 3 ))
byte=$(od -An -tu1 -j "$offset" -N1 broken.der | tr -d ' ')
printf "\\$(printf '%03o' $(( byte ^ 1 )))" | dd of=broken.der bs=1 seek="$offset" conv=notrunc status=none
pem() { echo "-----BEGIN CERTIFICATE REQUEST-----"; openssl base64 -in "$1"; echo "-----END CERTIFICATE REQUEST-----"; }
pem broken.der > broken-signature.csr

# refused: version 2 (INTEGER 1) where PKCS#10 has only version 1 (0): the first INTEGER inside
# CertificationRequestInfo, found with asn1parse, gets the value 1
openssl req -in ok-p256-sha256.csr -outform DER -out version.der
read -r at hl < <(openssl asn1parse -inform DER -in version.der \
  | sed -n 's/^ *\([0-9]*\):d=2 *hl=\([0-9]*\) *l= *1 prim: INTEGER *:00$/\1 \2/p' | head -n 1)
printf '\001' | dd of=version.der bs=1 seek=$(( at + hl )) conv=notrunc status=none
pem version.der > bad-version.csr
rm broken.der version.der ./*.key
