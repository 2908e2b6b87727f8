"""`aekit serve`, the explorer: its endpoints (Starlette's TestClient), the command, and the page in headless Chromium.

A tiny untrained model (helpers.TINY) with directions fitted on synthetic faces' attributes, a
gaussian prior and a features file of a folder of faces stands in for faces-64; the browser test runs
the real server (uvicorn in a thread) and Debian's chromium through playwright (never `playwright
install`), and is skipped with the reason when either is missing.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

import aekit
from aekit.synthetic import make_faces
from corpus import _png_header_only, encoded, face
from helpers import TINY, error_line, run_cli, save_tiny_model

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "plugins" / "aekit_serve" / "static"
SIZE, LAT = TINY["image_size"], TINY["latent_dim"]
LIMIT_MB = 0.2  # the test apps' upload limit: 200,000 bytes


# --- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory, module_home):
    """A tiny model with directions and a gaussian prior beside it, a folder of faces and its features file."""
    from aekit import model_fingerprint
    from aekit_edit import directions_path, fit_directions, save_directions
    from aekit_generate import fit_priors
    from helpers import invoke

    root = tmp_path_factory.mktemp("serve")
    model_dir = save_tiny_model(root / "model")
    model = aekit.load(model_dir)
    images, attributes = make_faces(60, seed=2, size=SIZE)
    latents = model.encode(images).numpy()
    directions, _ = fit_directions(latents, attributes, axes=3)
    save_directions(directions, directions_path(model_dir), model_fingerprint(model))
    fit_priors(model, latents, ["gaussian"])
    faces = root / "faces"
    faces.mkdir()
    for i, image in enumerate(make_faces(10, seed=7, size=48)[0]):
        Image.fromarray(image).save(faces / f"face{i}.png")
    invoke("embed", faces, "-m", model_dir, "-o", root / "feats.npz", "--align", "off", "-q")  # one row per image
    bare = save_tiny_model(root / "bare", seed=1)  # no directions, no prior
    return {"root": root, "model": model_dir, "faces": faces, "feats": root / "feats.npz", "bare": bare,
            "directions": directions}


def _app(setup, features=True, denoiser=True, gallery=None, model=None, **kwargs):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from aekit.features import load_features
    from aekit_serve.app import build_app

    loaded = aekit.load(model or setup["model"])
    return build_app(loaded, denoiser=aekit.load(setup["model"]) if denoiser else None,
                     features=load_features(setup["feats"]) if features else None, features_path=setup["feats"],
                     gallery_dir=gallery, max_upload_mb=LIMIT_MB, **kwargs)


@pytest.fixture(scope="module")
def app(setup):
    return _app(setup)


def page_client(app, **kwargs):
    """A TestClient sending what the page's script sends with every request (X-Aekit: 1)."""
    from starlette.testclient import TestClient

    return TestClient(app, headers={"X-Aekit": "1"}, **kwargs)


@pytest.fixture
def client(app):
    with page_client(app, raise_server_exceptions=False) as test_client:
        yield test_client


def png_bytes(image=None, size=40) -> bytes:
    # seed 1: a face framed like CelebA, which uploads (aligned, --align auto) take as it is; seed 0's is too small
    return encoded(Image.fromarray(face(size, 1) if image is None else image), "PNG")


def decoded(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def upload(client, data: bytes, name="face.png", **kwargs):
    return client.post("/api/encode", files={"image": (name, data, "image/png")}, **kwargs)


def one_line_error(response, status: int, *needles: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    message = body["error"]
    assert "\n" not in message and "Traceback" not in message and 0 < len(message) < 400, message
    for needle in needles:
        assert needle in message, message
    return message


def encode_face(client, seed=1) -> dict:
    response = upload(client, png_bytes(face(40, seed)))
    assert response.status_code == 200, response.text
    return response.json()


# --- the endpoints --------------------------------------------------------------------------------------------


def test_info_says_what_the_page_can_show(client, setup):
    info = client.get("/api/info").json()
    directions = setup["directions"]
    assert info["model"] == "model" and info["image_size"] == SIZE and info["latent_dim"] == LAT
    assert info["model_id"] == aekit.model_fingerprint(aekit.load(setup["model"]))
    assert [d["name"] for d in info["directions"]] == directions.names
    assert [d["kind"] for d in info["directions"]] == directions.kinds
    assert {"attribute", "principal"} == {d["kind"] for d in info["directions"]}
    assert info["has_denoiser"] and info["has_prior"] and info["sampler"] == "gaussian" and info["prior_note"] is None
    assert info["has_index"] and info["index_size"] == 10 and info["index_note"] is None
    assert "gaussian" in info["noise_models"] and info["max_upload_mb"] == LIMIT_MB


def test_the_page_and_its_files_are_served_with_a_policy_that_allows_only_this_server(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy and "img-src 'self' data:" in policy
    for name in ("app.js", "style.css"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.headers["x-content-type-options"] == "nosniff"
        assert f"/static/{name}" in page.text


def test_the_static_files_name_no_outside_host():
    """No CDN, font, analytics or any other absolute URL in the page, its script or its style."""
    files = sorted(STATIC.iterdir())
    assert {p.name for p in files} >= {"index.html", "app.js", "style.css"}
    forbidden = re.compile(r"https?:|//cdn|(?<![:/\w])//[\w.-]+\.\w+/|@import|fonts\.|googleapis|gstatic|analytics|"
                           r"unpkg|jsdelivr|cdnjs|\bws://|\bwss://", re.IGNORECASE)
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not forbidden.search(text), (path.name, forbidden.search(text).group(0))
        for url in re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", text) + re.findall(r"url\(([^)]*)\)", text):
            assert url.startswith(("/static/", "data:")), (path.name, url)


def test_an_upload_gives_a_token_its_latent_and_reconstruction(client, setup):
    data = png_bytes(face(40, 3))
    result = upload(client, data, "me.png").json()
    model = aekit.load(setup["model"])
    from aekit.images import resize_rgb

    pixels = resize_rgb(Image.open(io.BytesIO(data)).convert("RGB"), SIZE)
    expected = model.encode(pixels[None]).numpy()[0]
    np.testing.assert_allclose(result["latent"], expected, atol=1e-5)
    assert result["name"] == "me.png" and len(result["token"]) >= 12
    assert decoded(result["original"]).shape == decoded(result["reconstruction"]).shape == (SIZE, SIZE, 3)
    again = upload(client, data, "me.png").json()
    assert again["latent"] == result["latent"] and again["token"] != result["token"]


def test_a_jpeg_and_a_large_photo_are_read(client):
    photo = Image.fromarray(face(40, 1)).resize((600, 700))
    result = upload(client, encoded(photo, "JPEG", quality=90), "photo.jpg")
    assert result.status_code == 200, result.text
    assert decoded(result.json()["original"]).shape == (SIZE, SIZE, 3)


@pytest.mark.parametrize("name,data,status,needles", [
    ("notes.png", b"these are my notes, not a picture\n" * 20, 400, ["notes.png", "not an image"]),
    ("cut.png", png_bytes(face(40))[:300], 400, ["cut.png", "damaged image"]),
    ("bomb.png", _png_header_only(100_000, 100_000), 400, ["bomb.png", "image too large"]),
    ("empty.png", b"", 400, ["empty.png", "empty"]),
    ("../../etc/passwd", b"GIF89a", 400, ["passwd"]),
])
def test_a_bad_upload_is_one_line_and_the_server_goes_on(client, name, data, status, needles):
    message = one_line_error(upload(client, data, name), status, *needles)
    assert "/tmp" not in message and "aekit-serve-" not in message  # the temporary file is never named
    assert encode_face(client)["token"]  # the server still works


def test_a_huge_dimension_image_under_the_byte_limit_is_refused_before_decoding(client, monkeypatch):
    """A decompression bomb: a small file whose pixels would not fit in memory."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64)
    big = png_bytes(np.zeros((200, 200, 3), np.uint8))
    assert len(big) < LIMIT_MB * 1e6
    one_line_error(upload(client, big, "wide.png"), 400, "wide.png", "image too large")


FORM = "multipart/form-data; boundary=x"
FORM_START = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'


def test_an_oversized_upload_is_413(client):
    big = b"\x89PNG" + bytes(int(LIMIT_MB * 1e6) + 10)
    one_line_error(upload(client, big, "big.png"), 413, "limit of 0.2 MB")
    # streamed without a Content-Length (chunked): counted while read
    chunks = (FORM_START if i == 0 else bytes(50_000) for i in range(10))
    one_line_error(client.post("/api/encode", content=chunks, headers={"content-type": FORM}), 413, "limit")
    one_line_error(client.post("/api/decode", content=b"[" + b"0," * 600_000 + b"0]",
                               headers={"content-type": "application/json"}), 413)
    assert client.get("/api/info").status_code == 200


def test_a_content_length_that_lies_does_not_let_a_big_body_through(app):
    """The limit is counted on the bytes received, not taken from the header."""
    import asyncio

    sent = []
    chunks = [bytes(90_000)] * 4 + [FORM_START]  # 360,000 bytes under a header claiming 100 (popped from the end)

    async def receive():
        body = chunks.pop() if chunks else b""
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/encode", "raw_path": b"/api/encode", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", FORM.encode()), (b"content-length", b"100"),
                         (b"x-aekit", b"1")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 413 and "limit" in json.loads(body)["error"]


def test_a_form_without_the_image_field_or_with_a_broken_body(client):
    one_line_error(client.post("/api/encode", files={"picture": ("a.png", png_bytes(), "image/png")}), 400, "'image'")
    one_line_error(client.post("/api/encode", content=b"--x\r\nnonsense",
                               headers={"content-type": "multipart/form-data; boundary=x"}), 400)
    one_line_error(client.post("/api/encode", json={"nothing": 1}), 400, "gallery")
    one_line_error(client.post("/api/encode", content=b"{not json", headers={"content-type": "application/json"}),
                   400, "not valid JSON")


def test_decode_moves_the_latent_along_the_directions(client, setup):
    directions = setup["directions"]
    result = encode_face(client)
    model = aekit.load(setup["model"])
    attribute = directions.named("attribute")[0]
    edits = {attribute: 2.0, "pc1": -1.5}
    edited = client.post("/api/decode", json={"latent": result["latent"], "edits": edits}).json()
    z = directions.apply(np.asarray([result["latent"]], np.float32), edits)
    np.testing.assert_allclose(edited["latent"], z[0], atol=1e-5)
    from aekit.images import to_uint8_hwc

    assert (decoded(edited["image"]) == to_uint8_hwc(model.decode(z))[0]).all()
    plain = client.post("/api/decode", json={"token": result["token"]}).json()
    assert plain["image"] == result["reconstruction"]
    assert plain["image"] != edited["image"]


def test_decode_refuses_unknown_directions_and_bad_values(client, setup):
    latent = encode_face(client)["latent"]
    one_line_error(client.post("/api/decode", json={"latent": latent, "edits": {"Wings": 1}}), 400, "no direction 'Wings'")
    one_line_error(client.post("/api/decode", json={"latent": latent, "edits": {"pc1": "lots"}}), 400, "must be a number")
    one_line_error(client.post("/api/decode", json={"latent": latent, "edits": {"pc1": 1e9}}), 400, "between")
    one_line_error(client.post("/api/decode", json={"latent": latent, "edits": ["pc1"]}), 400, "edits must be")
    one_line_error(client.post("/api/decode", json={"latent": latent[:-1]}), 400, f"list of {LAT} numbers")
    one_line_error(client.post("/api/decode", json={"latent": [None] * LAT}), 400, "numbers only")
    one_line_error(client.post("/api/decode", content=b'{"latent": [' + b",".join([b"NaN"] * LAT) + b"]}",
                               headers={"content-type": "application/json"}), 400, "not finite")
    one_line_error(client.post("/api/decode", json=[1, 2]), 400, "JSON object")
    one_line_error(client.post("/api/decode", json={"token": "gone"}), 404, "no longer in memory")


@pytest.mark.parametrize("path, body, needle", [
    ("/api/decode", '{"latent": [' + ",".join(["1" + "0" * 3999] + ["0"] * (LAT - 1)) + "]}", "a 4000-digit number"),
    ("/api/decode", '{"latent": [' + ",".join(["0"] * LAT) + '], "edits": {"pc1": 1' + "0" * 3999 + "}}", "a 4000-digit number"),
    ("/api/sample", '{"seed": 1' + "0" * 3999 + "}", "a 4000-digit number"),
    ("/api/decode", '{"latent": ' + "9" * 5000 + "}", "a 5000-digit number"),
    ("/api/decode", '{"latent": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ("/api/interpolate", '{"a": {"b": ' * 50_000 + "0" + "}" * 100_000, "nested too deeply"),
], ids=["latent-4000-digits", "amount-4000-digits", "seed-4000-digits", "5000-digits", "deep-list", "deep-object"])
def test_absurd_numbers_and_deep_nesting_are_a_400_not_a_500(client, path, body, needle):
    response = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
    one_line_error(response, 400, "the request body is not valid JSON", needle)
    assert client.get("/api/info").status_code == 200  # and the server goes on


def test_a_huge_integer_from_python_is_a_400_too(setup):
    from aekit_serve.explorer import Explorer, ExplorerError

    explorer = Explorer(aekit.load(setup["model"]))
    with pytest.raises(ExplorerError, match="must be between"):
        explorer.decode(latent=[0.0] * LAT, edits={"pc1": 10**400})
    with pytest.raises(ExplorerError, match="not finite or is absurdly large"):
        explorer.latent([10**400] + [0] * (LAT - 1))
    with pytest.raises(ExplorerError, match="got a number of more than 30 digits$"):
        explorer.sample(seed=10**4000)


def test_a_model_without_directions_says_how_to_get_them(setup):
    with page_client(_app(setup, features=False, denoiser=False, model=setup["bare"])) as client:
        info = client.get("/api/info").json()
        assert info["directions"] == [] and "aekit directions fit --model" in info["directions_note"]
        assert not info["has_prior"] and info["sampler"] == "normal" and "fit-prior" in info["prior_note"]
        assert not info["has_denoiser"] and not info["has_index"]
        latent = encode_face(client)["latent"]
        one_line_error(client.post("/api/decode", json={"latent": latent, "edits": {"pc1": 1}}), 400, "no directions")
        token = encode_face(client)["token"]
        one_line_error(client.post("/api/denoise", json={"token": token}), 404, "--denoiser")
        one_line_error(client.post("/api/neighbours", json={"token": token}), 404, "--features")
        assert client.post("/api/sample", json={"seed": 1, "n": 2}).json()["note"].startswith("no fitted prior")


def test_directions_of_another_model_are_refused_with_a_note(setup, tmp_path):
    other = shutil.copytree(setup["bare"], tmp_path / "other")
    shutil.copy(setup["model"] / "directions.safetensors", other / "directions.safetensors")
    from aekit_serve.explorer import Explorer

    explorer = Explorer(aekit.load(other))
    assert explorer.directions is None and "different model" in explorer.directions_note


def test_denoise_adds_seeded_noise_and_denoises(client):
    token = encode_face(client)["token"]
    first = client.post("/api/denoise", json={"token": token, "noise": "gaussian", "amount": 0.2, "seed": 3}).json()
    again = client.post("/api/denoise", json={"token": token, "noise": "gaussian", "amount": 0.2, "seed": 3}).json()
    other = client.post("/api/denoise", json={"token": token, "noise": "gaussian", "amount": 0.2, "seed": 4}).json()
    assert first == again and first["noisy"] != other["noisy"] and first["spec"] == "gaussian:0.2"
    assert decoded(first["noisy"]).shape == decoded(first["denoised"]).shape == (40, 40, 3)  # the upload's own size
    clean = client.post("/api/denoise", json={"token": token, "noise": "saltpepper", "amount": 0}).json()
    assert clean["spec"] == "none" and decoded(clean["noisy"]).shape == (40, 40, 3)
    one_line_error(client.post("/api/denoise", json={"token": token, "noise": "mask", "amount": 1}), 400, "fraction")
    one_line_error(client.post("/api/denoise", json={"token": token, "amount": 2}), 400, "between 0 and 1")
    one_line_error(client.post("/api/denoise", json={"token": token, "noise": "fire"}), 400, "noise must be one of")
    one_line_error(client.post("/api/denoise", json={"token": token, "seed": -1}), 400, "seed")
    one_line_error(client.post("/api/denoise", json={"token": "nope"}), 404)


def test_samples_come_from_the_fitted_prior_and_repeat_with_their_seed(client, setup):
    from aekit_generate import load_prior

    result = client.post("/api/sample", json={"seed": 5, "n": 3}).json()
    expected = load_prior(aekit.load(setup["model"]), "gaussian").sample(3, 5)
    np.testing.assert_allclose(result["latents"], expected, atol=1e-5)
    assert result["sampler"] == "gaussian" and len(result["images"]) == 3 and result["note"] is None
    assert client.post("/api/sample", json={"seed": 5, "n": 3}).json() == result
    one_line_error(client.post("/api/sample", json={"n": 0}), 400, "n must be between 1 and 16")
    one_line_error(client.post("/api/sample", json={"n": 2.5}), 400, "whole number")
    # a sample becomes a face to explore
    chosen = client.post("/api/encode", json={"latent": result["latents"][0], "name": "sample 0"}).json()
    assert chosen["name"] == "sample 0" and chosen["original"] == result["images"][0]


def test_interpolation_goes_from_a_to_b(client):
    a, b = encode_face(client, 1), encode_face(client, 2)
    result = client.post("/api/interpolate", json={"a": a["latent"], "b": b["latent"], "steps": 5}).json()
    assert result["t"] == [0.0, 0.25, 0.5, 0.75, 1.0] and len(result["images"]) == 5
    assert result["images"][0] == a["reconstruction"] and result["images"][-1] == b["reconstruction"]
    one_line_error(client.post("/api/interpolate", json={"a": a["latent"], "b": b["latent"], "steps": 1}), 400, "steps")
    one_line_error(client.post("/api/interpolate", json={"a": a["latent"]}), 400, "latent must be")


def test_neighbours_are_the_indexed_faces_with_their_pictures(client, setup):
    data = (setup["faces"] / "face4.png").read_bytes()
    token = upload(client, data, "face4.png").json()["token"]
    result = client.post("/api/neighbours", json={"token": token, "k": 3}).json()
    found = result["neighbours"]
    assert len(found) == 3 and found[0]["name"] == "face4.png" and found[0]["similarity"] > 0.999
    assert [f["similarity"] for f in found] == sorted((f["similarity"] for f in found), reverse=True)
    from aekit.images import resize_rgb

    expected = resize_rgb(Image.open(setup["faces"] / "face4.png").convert("RGB"), SIZE)
    assert (decoded(found[0]["image"]) == expected).all()
    one_line_error(client.post("/api/neighbours", json={"token": token, "k": 0}), 400, "k must be")


def test_neighbours_by_name_when_the_images_are_gone(setup, tmp_path):
    from aekit.features import load_features

    moved = tmp_path / "faces"
    shutil.copytree(setup["faces"], moved)
    from helpers import invoke

    invoke("embed", moved, "-m", setup["model"], "-o", tmp_path / "feats.npz", "-q")
    shutil.rmtree(moved)
    from aekit_serve.app import build_app

    app = build_app(aekit.load(setup["model"]), features=load_features(tmp_path / "feats.npz"))
    with page_client(app) as client:
        assert "neighbours shown by name" in client.get("/api/info").json()["index_note"]
        token = encode_face(client)["token"]
        found = client.post("/api/neighbours", json={"token": token, "k": 2}).json()
        assert [f["image"] for f in found["neighbours"]] == [None, None]
        assert all(f["name"].startswith("face") for f in found["neighbours"]) and found["note"]


def test_the_gallery_has_prior_samples_and_the_gallery_folder(setup, tmp_path):
    folder = tmp_path / "gallery"
    folder.mkdir()
    Image.fromarray(face(50, 4)).save(folder / "alice.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("not an image either")
    logged = []
    app = _app(setup, features=False, denoiser=False, gallery=folder, log_message=logged.append)
    with page_client(app) as client:
        items = client.get("/api/gallery").json()["gallery"]
        assert [i["label"] for i in items] == [f"gaussian sample {i}" for i in range(8)] + ["alice.png"]
        assert all(decoded(i["image"]).shape == (SIZE, SIZE, 3) for i in items)
        assert any("broken.jpg" in line for line in logged)
        chosen = client.post("/api/encode", json={"gallery": items[-1]["id"]}).json()
        assert chosen["name"] == "alice.png" and chosen["original"] == items[-1]["image"]
        assert client.post("/api/encode", json={"gallery": "sample-0"}).json()["original"] == items[0]["image"]
        one_line_error(client.post("/api/encode", json={"gallery": "sample-99"}), 404, "no gallery face")
        assert client.get("/api/gallery").json()["gallery"] == items  # made once


def test_only_the_latest_faces_are_kept(setup):
    from aekit_serve.explorer import Explorer

    explorer = Explorer(aekit.load(setup["model"]), max_faces=3)
    tokens = [explorer.encode_upload(png_bytes(face(40, i)), f"{i}.png")["token"] for i in range(1, 6)]
    with pytest.raises(Exception, match="no longer in memory"):
        explorer.face(tokens[0])
    assert explorer.face(tokens[-1]).name == "5.png" and len(explorer._faces) == 3


def test_an_unexpected_failure_is_a_500_line_logged_and_the_server_goes_on(setup, caplog):
    app = _app(setup, features=False, denoiser=False)

    def broken(*args, **kwargs):
        raise RuntimeError("the decoder fell over\nsecond line")

    app.state.explorer.decode = broken
    with page_client(app, raise_server_exceptions=False) as client:
        with caplog.at_level("ERROR", logger="aekit_serve"):
            message = one_line_error(client.post("/api/decode", json={"latent": [0.0] * LAT}), 500,
                                     "RuntimeError: the decoder fell over")
        assert "second line" not in message
        assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)
        assert client.get("/api/info").status_code == 200
        assert encode_face(client)["token"]


def test_unknown_api_paths_and_methods_answer_json(client):
    one_line_error(client.get("/api/nothing"), 404, "/api/nothing")
    one_line_error(client.get("/api/decode"), 405, "/api/decode")


def test_other_host_names_are_refused_on_loopback(setup):
    app = _app(setup, features=False, denoiser=False, allowed_hosts=["127.0.0.1", "localhost"])
    with page_client(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/info").status_code == 200
        assert client.get("/api/info", headers={"host": "attacker.example"}).status_code == 400


# --- another web page, an upload storm, a slow client ----------------------------------------------------------


EVIL = "https://evil.example"


@pytest.mark.parametrize("path, body, headers", [
    ("/api/encode", b"\x89PNG...", {"content-type": "text/plain", "origin": EVIL}),  # curl -H Origin --data-binary
    ("/api/decode", b'{"latent": [0]}', {"content-type": "text/plain;charset=UTF-8", "origin": EVIL,
                                         "sec-fetch-site": "cross-site"}),  # fetch(no-cors) with a JSON text
    ("/api/sample", b"seed=1", {"content-type": "application/x-www-form-urlencoded", "origin": "null"}),  # <form>
    ("/api/encode", FORM_START + b"\x89PNG\r\n--x--\r\n", {"content-type": FORM, "origin": EVIL,
                                                           "sec-fetch-site": "same-site"}),  # a multipart <form>
    ("/api/encode", FORM_START + b"\x89PNG\r\n--x--\r\n", {"content-type": FORM}),  # a script without the header
    ("/api/decode", b'{"latent": [0]}', {"content-type": "application/json", "origin": "http://127.0.0.1:1"}),
], ids=["text-plain", "json-as-text", "urlencoded-form", "multipart-form", "no-header", "another-port"])
def test_a_post_from_another_web_page_is_refused_before_its_body_is_read(setup, monkeypatch, path, body, headers):
    from starlette.testclient import TestClient

    app = _app(setup, features=False, denoiser=False)
    explorer = app.state.explorer
    for work in ("encode_upload", "decode", "sample"):
        monkeypatch.setattr(explorer, work, lambda *a, **k: pytest.fail("a refused request reached the explorer"))
    with TestClient(app, base_url="http://127.0.0.1") as browser:  # no X-Aekit: what another page can send
        message = one_line_error(browser.post(path, content=body, headers=headers), 403, "refused", "X-Aekit: 1")
        assert message.startswith(f"POST {path}: ")
        # a CORS preflight, which a page needs to add X-Aekit, is never approved
        preflight = browser.options(path, headers={"origin": EVIL, "access-control-request-method": "POST",
                                                   "access-control-request-headers": "x-aekit"})
        assert preflight.status_code == 405 and not any(h.startswith("access-control-") for h in preflight.headers)


def test_the_page_its_origin_or_the_header_gets_through_with_json_or_a_form_only(setup):
    from starlette.testclient import TestClient

    app = _app(setup, features=False, denoiser=False)
    data = png_bytes()
    with TestClient(app, base_url="http://127.0.0.1:7860") as browser:
        for headers in ({"x-aekit": "1"}, {"sec-fetch-site": "same-origin"}, {"origin": "http://127.0.0.1:7860"}):
            assert upload(browser, data, headers=headers).status_code == 200, headers
            assert browser.post("/api/sample", json={"n": 1}, headers=headers).status_code == 200, headers
        # the raw bytes of a file, or any body but JSON and a form, even from the page: 415
        for kind in ("image/png", "text/plain", "application/x-www-form-urlencoded", ""):
            message = one_line_error(browser.post("/api/encode", content=data, headers={"x-aekit": "1", "content-type": kind}),
                                     415, "JSON (Content-Type: application/json) or a multipart form")
            assert message.endswith(f"not {kind or 'untyped'}")
        assert browser.get("/api/info").status_code == 200  # a GET needs no header (the Host check guards it)


def _spy_on_decoding(monkeypatch):
    """Replace aekit.images.open_image by one that counts the decodes running and waits for `release`."""
    import threading

    import aekit.images

    real = aekit.images.open_image
    spy = {"now": 0, "most": 0, "calls": 0, "lock": threading.Lock(), "release": threading.Event()}

    def decoding(*args, **kwargs):
        with spy["lock"]:
            spy["now"] += 1
            spy["calls"] += 1
            spy["most"] = max(spy["most"], spy["now"])
        try:
            spy["release"].wait(timeout=60)  # a safety net only: the test releases it
            return real(*args, **kwargs)
        finally:
            with spy["lock"]:
                spy["now"] -= 1

    monkeypatch.setattr(aekit.images, "open_image", decoding)
    return spy


@pytest.mark.parametrize("limits", [{"decode_slots": 2}, {"max_upload_mp": 40 * 40 / 1e6, "decode_budget_mp": 2 * 40 * 40 / 1e6}],
                         ids=["slots", "pixels"])
def test_an_upload_storm_decodes_at_most_k_at_once_and_the_rest_are_busy(setup, monkeypatch, limits):
    """N uploads at once: K (two 40x40 faces) decode, the others get 503 "busy" at once, none is queued."""
    import asyncio

    import httpx

    n, k = 10, 2
    app = _app(setup, features=False, denoiser=False, **limits)
    spy = _spy_on_decoding(monkeypatch)
    form = {"image": ("face.png", png_bytes(face(40, 5)), "image/png")}

    async def storm():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers={"X-Aekit": "1"}) as http:
            requests = [asyncio.ensure_future(http.post("/api/encode", files=form)) for _ in range(n)]
            answers = []
            for answered in asyncio.as_completed(requests):
                answers.append(await answered)
                if len(answers) == n - k:  # the k decoding cannot answer before they are released
                    spy["release"].set()
            return answers, await http.post("/api/encode", files=form)

    answers, after = asyncio.run(storm())
    assert spy["most"] == k and spy["calls"] == k + 1, spy
    assert sorted(a.status_code for a in answers) == [200] * k + [503] * (n - k)
    for busy in answers[:n - k]:
        one_line_error(busy, 503, "busy", "try again")
        assert busy.headers["retry-after"] == "1"
    assert after.status_code == 200 and after.json()["token"]  # the budget was given back


def test_an_image_of_too_many_pixels_is_413_before_decoding_and_a_jpeg_counts_at_its_reduced_scale(setup, monkeypatch):
    app = _app(setup, features=False, denoiser=False, max_upload_mp=0.2)
    spy = _spy_on_decoding(monkeypatch)
    spy["release"].set()
    with page_client(app) as client:
        one_line_error(upload(client, png_bytes(np.zeros((500, 500, 3), np.uint8)), "wide.png"), 413,
                       "wide.png: 500x500 is 0.25 million pixels", "limit of 0.2 million", "--max-upload-mp")
        assert spy["calls"] == 0  # refused from the header
        photo = encoded(Image.fromarray(face(40, 1)).resize((2400, 2800)), "JPEG", quality=60)
        assert len(photo) < LIMIT_MB * 1e6
        result = upload(client, photo, "camera.jpg")  # 6.7 million pixels, decoded at 1/8: 300x350
        assert result.status_code == 200, result.text
        assert decoded(result.json()["original"]).shape == (SIZE, SIZE, 3)


def test_running_out_of_memory_is_503_busy_not_a_damaged_image(setup, monkeypatch, caplog):
    from PIL import ImageFile

    app = _app(setup, features=False, denoiser=False)

    def no_memory(*args, **kwargs):
        raise MemoryError

    with page_client(app, raise_server_exceptions=False) as client:
        with monkeypatch.context() as patch:
            patch.setattr(ImageFile.ImageFile, "load", no_memory)
            response = upload(client, png_bytes(), "face.png")
        message = one_line_error(response, 503, "ran out of memory", "try again")
        assert "damaged" not in message and response.headers["retry-after"] == "1"
        app.state.explorer.decode = no_memory  # the model's work, elsewhere
        with caplog.at_level("ERROR", logger="aekit_serve"):
            one_line_error(client.post("/api/decode", json={"latent": [0.0] * LAT}), 503, "ran out of memory")
        assert encode_face(client)["token"]  # and the server goes on


def test_a_slow_client_is_timed_out_with_408_and_its_connection_closed(setup):
    from aekit_serve.app import running

    app = _app(setup, features=False, denoiser=False, body_timeout_s=0.5)
    with running(app) as url:
        where = urlparse(url)
        with socket.create_connection((where.hostname, where.port), timeout=30) as conn:
            conn.sendall(b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Aekit: 1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b'{"latent": [0.0, ')
            answer = b""
            while chunk := conn.recv(65536):  # till the server closes the connection (else socket.timeout)
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(body)["error"] == "the request body did not arrive within 0.5 s"


# --- the command ----------------------------------------------------------------------------------------------


def test_check_loads_everything_and_says_what_the_page_shows(setup):
    pytest.importorskip("starlette")
    result = run_cli("serve", "-m", setup["model"], "--features", setup["feats"], "--denoiser", setup["model"],
                     "--port", "0", "--check")
    assert result.exit_code == 0, result.output
    attributes = len(setup["directions"].named("attribute"))
    assert f"directions: {attributes} attribute(s), 3 principal axes" in result.stderr, result.stderr
    assert "prior: gaussian" in result.stderr and "nearest faces: 10 faces" in result.stderr
    assert "denoiser: model" in result.stderr and "--check: not serving" in result.stdout


def test_check_without_directions_prior_or_denoiser(setup):
    pytest.importorskip("starlette")
    result = run_cli("serve", "-m", setup["bare"], "--denoiser", "none", "--port", "0", "--check")
    assert result.exit_code == 0, result.output
    assert "no directions: run `aekit directions fit" in result.stderr
    assert "denoiser: none (--denoiser none)" in result.stderr and "no fitted prior" in result.stderr


@pytest.mark.parametrize("args,needle", [
    (["--model", "nosuch-model"], "nosuch-model: no such checkpoint folder"),
    (["--denoiser", "{root}/nowhere"], "no such checkpoint folder"),
    (["--features", "{root}/none.npz"], "none.npz"),
    (["--gallery", "{root}/nowhere"], "does not exist"),
    (["--port", "70000"], "70000 is not in the range"),
    (["--max-upload-mb", "0"], "0 is not in the range"),
    (["--max-upload-mp", "0"], "0 is not in the range"),
    (["--host", "no.such.host.invalid"], "not an address of this machine"),
])
def test_bad_settings_are_one_line(setup, args, needle):
    pytest.importorskip("starlette")
    args = [a.replace("{root}", str(setup["root"])) for a in args]
    base = ["serve", "-m", setup["model"], "--denoiser", "none", "--port", "0", "--check"]
    result = run_cli(*base, *args)
    assert needle in error_line(result), result.output


def test_features_of_another_model_are_refused(setup):
    pytest.importorskip("starlette")
    result = run_cli("serve", "-m", setup["bare"], "--features", setup["feats"], "--denoiser", "none", "--port", "0",
                     "--check")
    line = error_line(result, 1)
    assert "feats.npz" in line and "made by model" in line and "give the --model that made it" in line


def test_an_index_from_the_default_feature_extractor_is_searched_with_it(setup, tmp_path):
    """`aekit embed` without --model uses the features task's model (faces-64-features), which cannot decode:
    the page explores its codec and embeds queries with the model that made the index."""
    pytest.importorskip("starlette")
    from aekit import model_fingerprint
    from aekit.features import load_features
    from aekit_serve.app import build_app
    from aekit_serve.command import index_model
    from aekit_serve.explorer import Explorer
    from helpers import invoke

    invoke("embed", setup["faces"], "-o", tmp_path / "feats.npz", "--align", "off", "-q")
    result = run_cli("serve", "-m", setup["model"], "--features", tmp_path / "feats.npz", "--denoiser", "none",
                     "--port", "0", "--check")
    assert result.exit_code == 0, result.output
    assert "nearest faces: 10 faces" in result.stderr and "Using model faces-64-features" in result.stderr
    features, codec = load_features(tmp_path / "feats.npz"), aekit.load(setup["model"])
    extractor = index_model(features, codec)
    assert model_fingerprint(extractor) == features.model_id != model_fingerprint(codec)
    assert index_model(load_features(setup["feats"]), codec) is None  # the explored model's own index
    explorer = Explorer(codec, features=features, feature_model=extractor)
    with page_client(build_app(codec, explorer=explorer)) as client:
        token = encode_face(client)["token"]
        found = client.post("/api/neighbours", json={"token": token, "k": 3}).json()["neighbours"]
        assert len(found) == 3 and all(f["name"].startswith("face") for f in found)


def test_a_denoiser_as_the_model_is_refused(setup, tmp_path):
    pytest.importorskip("starlette")
    unet = aekit.create_model("unet", widths=(8, 16), image_size=16, latent_dim=8).save_pretrained(tmp_path / "unet")
    result = run_cli("serve", "-m", unet, "--denoiser", "none", "--port", "0", "--check")
    assert "no latent space to explore" in error_line(result, 1)


def test_a_busy_port_is_one_line(setup):
    pytest.importorskip("starlette")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli("serve", "-m", setup["model"], "--denoiser", "none", "--port", port, "--check")
    assert f"port {port} on 127.0.0.1 is in use" in error_line(result, 2)


def test_another_host_than_loopback_is_warned_about(setup):
    pytest.importorskip("starlette")
    result = run_cli("serve", "-m", setup["model"], "--denoiser", "none", "--host", "0.0.0.0", "--port", "0", "--check")
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: --host 0.0.0.0 is not loopback: anyone who can reach this machine on port 0 can use the explorer"]


def test_without_the_extra_the_command_names_it(setup, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    result = run_cli("serve", "-m", setup["model"], "--port", "0", "--check")
    line = error_line(result, 1)
    assert line == "Error: aekit serve needs uvicorn: pip install 'aekit[serve]'"


def test_the_plugin_loads_without_starlette(monkeypatch):
    """Only the command imports starlette: `aekit plugins` and the other commands work without the extra."""
    import aekit.plugins

    monkeypatch.setitem(sys.modules, "starlette", None)
    aekit.plugins.reset()
    assert "serve" in aekit.plugins.get_registry().names("command")
    assert run_cli("serve", "--help").exit_code == 0


# --- the page in a real browser -------------------------------------------------------------------------------


def _chromium() -> str:
    pytest.importorskip("starlette")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); the explorer's browser test needs it")
    return chromium


def test_the_page_in_headless_chromium_uploads_a_face_and_a_slider_redraws_it(setup, tmp_path):
    from playwright.sync_api import sync_playwright

    from aekit_serve.app import running

    chromium = _chromium()
    app = _app(setup)
    face_file = tmp_path / "me.png"
    Image.fromarray(face(40, 6)).save(face_file)
    bad_file = tmp_path / "holiday.png"
    bad_file.write_text("not a picture at all")
    problems, requests, allowed_console, posts = [], [], [], []
    with running(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type == "error" and m.text not in allowed_console else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
            page.on("request", lambda r: requests.append(r.url))
            page.on("request", lambda r: posts.append(r.headers.get("x-aekit")) if r.method == "POST" else None)
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            assert page.locator("input.direction").count() == len(setup["directions"].names)
            assert page.locator("#gallery button").count() == 8

            page.set_input_files("#upload", str(face_file))
            page.wait_for_function("() => document.getElementById('reconstruction').src.startsWith('data:')")
            page.wait_for_function("() => document.getElementById('denoised').src.startsWith('data:')")
            page.wait_for_function("() => document.querySelectorAll('#neighbours figure').length === 8")
            assert page.text_content("#face-name") == "(me.png)"
            before = page.get_attribute("#edited", "src")
            explorer = app.state.explorer
            token = next(reversed(explorer._faces))  # the last face: me.png
            assert before == explorer.decode(token=token)["photo"]  # an upload's edits are shown in the photo
            assert page.text_content("#edited-note") == "(in the photo)"

            name = setup["directions"].named("attribute")[0]
            slider = page.locator(f"input.direction[data-direction='{name}']")
            slider.focus()
            page.keyboard.press("End")  # as a user drags it to the right end: amount 3
            page.wait_for_function("s => document.getElementById('edited').src !== s", arg=before)
            page.wait_for_function("() => !document.querySelector('.busy')")
            after = page.get_attribute("#edited", "src")
            assert after == explorer.decode(token=token, edits={name: 3.0})["photo"]  # exactly the edited photo

            allowed_console.append("Failed to load resource: the server responded with a status of 400 (Bad Request)")
            page.set_input_files("#upload", str(bad_file))
            page.wait_for_selector("#message:not([hidden])")
            message = page.text_content("#message")
            assert "holiday.png: not an image Pillow can read" in message and "Traceback" not in message
            assert page.get_attribute("#edited", "src") == after  # the face shown stays
        finally:
            browser.close()
    assert problems == []
    outside = [u for u in requests if urlparse(u).scheme != "data" and urlparse(u).hostname not in ("127.0.0.1", "localhost")]
    assert outside == [] and len(requests) >= 5
    assert len(posts) >= 4 and set(posts) == {"1"}  # every POST (JSON or the upload's form) carries X-Aekit


# --- edits in the photo ---------------------------------------------------------------------------------------


def _kept(data: bytes) -> np.ndarray:
    """An upload as the explorer keeps it: RGB, at most PHOTO_SIDE on its longer side."""
    from aekit_serve.explorer import PHOTO_SIDE

    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
    return np.asarray(image)


def test_an_uploaded_photo_is_aligned_and_its_edits_are_shown_in_the_photo(client, setup):
    from test_faces import photo, placed

    from aekit.alignment import get_aligner
    from aekit.images import to_uint8_hwc

    synthetic = make_faces(12, seed=0, size=192)[0]
    data = png_bytes(photo([(synthetic[9], placed((300, 220), 1.3, 12))], size=(600, 440)))
    result = upload(client, data, "holiday.png").json()
    kept = _kept(data)
    assert max(kept.shape[:2]) == 256 and decoded(result["photo"]).shape == kept.shape  # capped as before
    aligner = get_aligner()
    face = aligner.find(kept)[0]
    np.testing.assert_array_equal(decoded(result["original"]), aligner.crop(kept, face, SIZE))  # aligned first
    attribute = setup["directions"].named("attribute")[0]
    edited = client.post("/api/decode", json={"token": result["token"], "edits": {attribute: 10}}).json()
    shown = decoded(edited["photo"])
    mask = aligner.mask(kept.shape, face)
    assert shown.shape == kept.shape
    np.testing.assert_array_equal(shown[mask == 0], kept[mask == 0])  # the photo's own pixels outside the mask
    assert (shown != kept)[mask > 0.5].any()
    model = aekit.load(setup["model"])
    z = setup["directions"].apply(np.asarray([result["latent"]], np.float32), {attribute: 10})
    np.testing.assert_array_equal(decoded(edited["image"]), to_uint8_hwc(model.decode(z))[0])  # the face, as before
    plain = client.post("/api/decode", json={"token": result["token"]}).json()
    np.testing.assert_array_equal(decoded(plain["photo"]), kept)  # no edit: the photo itself
    by_latent = client.post("/api/decode", json={"latent": result["latent"], "edits": {attribute: 10}}).json()
    assert by_latent["photo"] is None and by_latent["image"] == edited["image"]


def test_uploads_follow_the_explorers_align_mode(setup):
    from aekit_serve.explorer import Explorer, ExplorerError

    blank = png_bytes(np.full((120, 160, 3), 128, np.uint8))
    strict = Explorer(aekit.load(setup["model"]), align="on")
    with pytest.raises(ExplorerError, match="blank.png: no face found") as error:
        strict.encode_upload(blank, "blank.png")
    assert error.value.status == 400 and "--align on" in str(error.value)
    attribute = setup["directions"].named("attribute")[0]
    for mode in ("auto", "off"):  # no face, or not looked for: the picture as the model's framing, edited whole
        explorer = Explorer(aekit.load(setup["model"]), align=mode)
        token = explorer.encode_upload(blank, "blank.png")["token"]
        changed = decoded(explorer.decode(token=token, edits={attribute: 10})["photo"]) != _kept(blank)
        assert changed.any(axis=2).mean() > 0.5 and changed[:20, :20].any() and changed[-20:, -20:].any(), mode
    assert explorer.info()["align"] == "off"


def test_serve_takes_align_and_says_how_uploads_are_read(setup):
    pytest.importorskip("starlette")
    base = ["serve", "-m", setup["model"], "--denoiser", "none", "--port", "0", "--check"]
    result = run_cli(*base, "--align", "on")
    assert result.exit_code == 0, result.output
    assert "uploads: the largest face aligned by yunet (--align on), edits shown in the photo" in result.stderr
    assert "uploads: taken as they are (--align off)" in run_cli(*base, "--align", "off").stderr
    assert "'sideways' is not one of" in error_line(run_cli(*base, "--align", "sideways"), 2)
