"""`kinmerge push`: everything up to the hub upload call (the hub is unreachable here)."""
import pytest
from click.testing import CliRunner

import kinmerge
from kinmerge.cli import main
from kinmerge.errors import KinmergeError
from kinmerge.lineage.publish import push


class FakeApi:
    def __init__(self, fail=None):
        self.calls, self.fail = [], fail

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kw):
        if self.fail:
            raise self.fail
        self.calls.append(("upload_folder", kw))


@pytest.fixture
def merged(family, tmp_path):
    r = {"merge_method": "slerp", "base_model": family["ft"][0], "parameters": {"t": 0.5},
         "models": [{"model": family["ft"][0]}, {"model": family["ft"][1]}]}
    return kinmerge.merge(r, tmp_path / "child",
                          lineage={"scores": {"mean": 0.7}, "generation": 2,
                                   "parent_kinship": {"pcc": 0.31}})


def test_push_uploads_folder_with_lineage_card(merged):
    api = FakeApi()
    url = push(merged, "me/child", private=True, api=api)
    assert url == "https://huggingface.co/me/child"
    (op, repo, kw), (op2, up) = api.calls
    assert op == "create_repo" and kw == {"private": True, "exist_ok": True,
                                          "repo_type": "model"}
    assert up["folder_path"] == str(merged) and up["repo_id"] == "me/child"
    card = (merged / "README.md").read_text()
    assert "## Lineage" in card and "Generation 2." in card and "pcc = 0.3100" in card
    assert "- parent `ft1`" in card and "mean = 0.7000" in card
    push(merged, "me/child", api=FakeApi())
    assert (merged / "README.md").read_text().count("## Lineage") == 1  # idempotent


def test_push_errors(merged, tmp_path):
    with pytest.raises(KinmergeError, match="not a hub repository id"):
        push(merged, "no-slash", api=FakeApi())
    with pytest.raises(KinmergeError, match="is not a model directory"):
        push(tmp_path, "me/x", api=FakeApi())
    with pytest.raises(KinmergeError, match="upload to me/x failed: ConnectionError: offline"):
        push(merged, "me/x", api=FakeApi(fail=ConnectionError("offline")))


def test_push_cli_reports_unreachable_hub(merged, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = CliRunner().invoke(main, ["push", str(merged), "me/child", "--token", "x"])
    assert r.exit_code == 2 and "upload to me/child failed" in r.output


def test_failed_upload_leaves_the_local_card_as_it_was(merged):
    card = merged / "README.md"
    card.write_text("# my notes\n\nhand-written, no lineage section yet\n")
    with pytest.raises(KinmergeError, match="upload to me/x failed"):
        push(merged, "me/x", api=FakeApi(fail=ConnectionError("offline")))
    assert card.read_text() == "# my notes\n\nhand-written, no lineage section yet\n"
    push(merged, "me/x", api=FakeApi())  # a successful upload does update it
    assert "## Lineage" in card.read_text()
