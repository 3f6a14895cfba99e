"""The device's pure-Python Ed25519 verifier (edge/ed25519.py) against RFC 8032 section 7.1, and the signer
the platform uses (`cryptography`) against the same published vectors: the two agree bit for bit."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from retail_assets.edge import ed25519

# RFC 8032 section 7.1, TEST 1024: the 1023-byte message
MESSAGE_1023 = bytes.fromhex(
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1"
    "e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a"
    "7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10"
    "3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d"
    "502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b"
    "eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
    "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d"
    "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7"
    "984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09"
    "43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161"
    "0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca"
    "c60c905c15fc910840b94c00a0b9d0"
)

# (name, secret key, public key, message, signature), hex as published in RFC 8032 section 7.1
RFC8032 = [
    ("TEST 1",
     "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("TEST 2",
     "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("TEST 3",
     "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ("TEST 1024",
     "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
     "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
     MESSAGE_1023.hex(),
     "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
     "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"),
]

IDS = [v[0] for v in RFC8032]
L = 2**252 + 27742317777372353535851937790883648493  # the group order (RFC 8032 section 5.1)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("name, secret, public, message, signature", RFC8032, ids=IDS)
def test_cryptography_reproduces_the_published_vectors(name, secret, public, message, signature):
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex() == public
    assert key.sign(bytes.fromhex(message)).hex() == signature


def test_the_long_vector_is_the_rfcs_1023_bytes():
    assert len(MESSAGE_1023) == 1023


@pytest.mark.parametrize("name, secret, public, message, signature", RFC8032, ids=IDS)
def test_verify_accepts_the_published_vectors(name, secret, public, message, signature):
    assert ed25519.verify(bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)) is True


@pytest.mark.parametrize("name, secret, public, message, signature", RFC8032, ids=IDS)
def test_a_flipped_bit_is_rejected(name, secret, public, message, signature):
    pk, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    for bit in (0, 1, 77, 254, 255, 256, 257, 300, 400, 510, 511):  # R is bits 0-255, S bits 256-511
        assert ed25519.verify(pk, msg, _flip(sig, bit)) is False, f"signature bit {bit}"
    for bit in (0, 1, 100, 200, 254, 255):
        assert ed25519.verify(_flip(pk, bit), msg, sig) is False, f"public key bit {bit}"
    assert ed25519.verify(pk, msg + b"\x00", sig) is False
    if msg:  # TEST 1 signs the empty message: nothing to flip or cut
        for bit in sorted({0, 7, len(msg) * 4, len(msg) * 8 - 1}):
            assert ed25519.verify(pk, _flip(msg, bit), sig) is False, f"message bit {bit}"
        assert ed25519.verify(pk, msg[:-1], sig) is False


def test_a_signature_does_not_verify_under_another_key_or_message():
    (_n1, _s1, pk1, m1, sig1), (_n2, _s2, pk2, m2, sig2) = RFC8032[:2]
    assert ed25519.verify(bytes.fromhex(pk2), bytes.fromhex(m1), bytes.fromhex(sig1)) is False
    assert ed25519.verify(bytes.fromhex(pk1), bytes.fromhex(m2), bytes.fromhex(sig2)) is False
    assert ed25519.verify(bytes.fromhex(pk1), bytes.fromhex(m2), bytes.fromhex(sig1)) is False


@pytest.mark.parametrize("name, secret, public, message, signature", RFC8032[:3], ids=IDS[:3])
def test_non_canonical_s_is_rejected(name, secret, public, message, signature):
    """S + L satisfies the group equation ([L]B is the identity) but is not the signature's one encoding:
    verify refuses S >= L (RFC 8032 section 5.1.7, step 1), so a signature cannot be re-encoded and pass."""
    pk, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    s = int.from_bytes(sig[32:], "little")
    assert ed25519._Q == L and s < L
    assert ed25519._equal(ed25519._mul(s + L, ed25519._G), ed25519._mul(s, ed25519._G))  # the math would accept
    malleated = sig[:32] + (s + L).to_bytes(32, "little")
    assert ed25519.verify(pk, msg, malleated) is False
    assert ed25519.verify(pk, msg, sig[:32] + L.to_bytes(32, "little")) is False  # S == L


def test_malformed_inputs_are_rejected_not_raised():
    _n, _s, public, message, signature = RFC8032[1]
    pk, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert ed25519.verify(pk[:31], msg, sig) is False
    assert ed25519.verify(pk + b"\x00", msg, sig) is False
    assert ed25519.verify(pk, msg, sig[:63]) is False
    assert ed25519.verify(pk, msg, sig + b"\x00") is False
    assert ed25519.verify(b"\xff" * 32, msg, sig) is False  # y >= p: not a point encoding
    assert ed25519.verify(pk, msg, b"\xff" * 32 + sig[32:]) is False  # R not a point
    assert ed25519.verify(b"", b"", b"") is False


def test_verify_agrees_with_cryptography_on_fresh_keys():
    import random

    rng = random.Random(8032)
    for _ in range(12):
        key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        pk = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        msg = rng.randbytes(rng.randrange(0, 300))
        sig = key.sign(msg)
        assert ed25519.verify(pk, msg, sig) is True
        assert ed25519.verify(pk, msg + b"!", sig) is False
