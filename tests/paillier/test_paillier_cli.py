"""`secagg demo paillier` runs end to end and reports consistent numbers."""

import json

from secagg.cli import main


def test_demo_paillier_reports_layout_bytes_and_exact_sum(tmp_path, capsys):
    rc = main(
        ["demo", "--out", str(tmp_path), "paillier", "--clients", "3", "--dim", "70", "--key-bits", "512",
         "--allow-insecure", "--bits", "12", "--phe-sample", "3", "--seed", "0"]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "slots per ciphertext" in text and "speed-up" in text
    report = json.loads((tmp_path / "paillier_demo.json").read_text())
    assert report["slot_bits"] == 12 and report["slots_per_ciphertext"] == 511 // 12
    assert report["ciphertexts"] == -(-70 // report["slots_per_ciphertext"])
    assert report["bytes_per_client"] == 52 + report["ciphertexts"] * 128
    assert report["max_abs_error"] <= report["error_bound"]
    assert set(report["per_element_seconds"]) == {"encrypt", "add", "decrypt"}


def test_demo_paillier_refuses_small_keys_without_the_flag(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path), "paillier", "--clients", "2", "--dim", "5", "--key-bits", "1024"])
    assert rc == 1
    assert "security floor" in capsys.readouterr().err
