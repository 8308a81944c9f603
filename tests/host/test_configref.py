"""docs/configuration.md is what ``sensorbox.host.configref`` generates from the schema and its help texts."""

from sensorbox.host import configref
from sensorbox.shared import config_docs, config_schema


def test_configuration_reference_is_current():
    with open(configref.PATH, encoding="utf-8") as f:
        committed = f.read()
    assert committed == configref.markdown(), (
        "docs/configuration.md is out of date with shared/config_schema.py or shared/config_docs.py: "
        "run `make config-docs` and commit the result")


def test_reference_names_every_key_once_with_its_help():
    text = configref.markdown()
    for key, kind, default, low, high, apply in config_schema.entries():
        assert text.count("| `{}` |".format(key)) == 1, key
    for d in config_docs.describe():
        line = next(x for x in text.split("\n") if x.startswith("| `{}` |".format(d["key"])))
        assert d["help"].replace("|", "\\|") in line, d["key"]
        if d["kind"] == "secret":
            assert "write-only" in line
        if d["apply"] == "reboot":
            assert "after a restart" in line


def test_check_says_what_to_run(tmp_path, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text("# old\n")
    assert configref.main(["--check", "--out", str(stale)]) == 1
    assert "make config-docs" in capsys.readouterr().err
    assert configref.main(["--out", str(stale)]) == 0
    assert configref.main(["--check", "--out", str(stale)]) == 0
    assert stale.read_text() == configref.markdown()
