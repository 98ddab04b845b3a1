"""``liverseg zoo``: the released weights of the zoo: list, fetch, verify, locate, clear, publish.

Weights are found bundled in the package, else in the cache (``$LIVERSEG_HOME``), else on
the mirror (``$LIVERSEG_WEIGHTS_URL``); :mod:`keras_liverseg.zoo.download` says how.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import click

from keras_liverseg.cli.errors import UserError
from keras_liverseg.cli.quiet import import_backend


@click.group("zoo")
def zoo() -> None:
    """The zoo's released weights: where they are, and how to get or share them.

    Weights are looked for bundled in the package, then in the cache (LIVERSEG_HOME,
    default $KERAS_HOME/liverseg, else ~/.keras/liverseg), then downloaded from the mirror
    (LIVERSEG_WEIGHTS_URL: http(s)://, file:// or a folder; a source checkout's releases/
    folder when unset) and checked against their SHA-256. LIVERSEG_OFFLINE=1 never
    downloads.
    """


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn the zoo's errors into the CLI's one-line ``Error: ...`` (exit code 2)."""
    from keras_liverseg import zoo as zoo_api
    from keras_liverseg.zoo.index import BadIndex
    from keras_liverseg.zoo.publish import PublishError

    try:
        yield
    except (zoo_api.WeightsNotAvailable, zoo_api.DownloadError, zoo_api.WeightsMismatch,
            BadIndex, PublishError) as error:
        raise UserError(str(error)) from None


def _records(refresh: bool = False):
    from keras_liverseg.zoo import download

    return download.all_records(refresh=refresh)


def _where(record) -> str:
    from keras_liverseg.zoo import download

    if record.bundled:
        return "bundled"
    return "cached" if download.is_cached(record) else "remote"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@zoo.command("list")
def list_() -> None:
    """Every zoo entry and its released weights: parameters, size, bundled / cached / remote,
    model card. One row per released file; an entry without any says "none"."""
    import_backend()
    from keras_liverseg import zoo as zoo_api
    from keras_liverseg.zoo.index import records_for

    with _one_line_errors():
        records = _records()
    header = (f"{'zoo model':<16} {'architecture':<12} {'parameters':>11}  "
              f"{'weights release':<34} {'size':>8}  {'where':<8} card")
    click.echo(header)
    for entry in zoo_api.entries():
        own = records_for(entry.name, records)
        if not own:
            count = zoo_api.load(entry.name, weights=None).count_params()
            click.echo(f"{entry.name:<16} {entry.architecture:<12} {count:>11,}  "
                       f"{'none (untrained only)':<34} {'-':>8}  {'-':<8} -")
        for record in own:
            release = record.release + (" (default)" if record.default else "")
            count = f"{record.parameters:,}" if record.parameters else "?"
            click.echo(f"{entry.name:<16} {entry.architecture:<12} {count:>11}  "
                       f"{release:<34} {_megabytes(record.size):>8}  {_where(record):<8} "
                       f"{record.card or '-'}")
    from keras_liverseg.zoo import download

    mirror = download.weights_url()
    click.echo(f"cache: {download.liverseg_home()}; mirror: {mirror or 'none'}"
               + ("; offline" if download.offline() else ""))


@zoo.command("fetch")
@click.argument("names", nargs=-1, metavar="NAME...")
@click.option("--all", "every", is_flag=True, help="Every released weights file of every entry.")
@click.option("--release", default=None, help="This release instead of the default weights.")
@click.option("--force", is_flag=True, help="Download again even when a good copy is cached.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def fetch(names: tuple[str, ...], every: bool, release: str | None, force: bool,
          quiet: bool) -> None:
    """Download zoo weights into the cache (checked; bundled ones are only verified)."""
    if bool(names) == every:
        raise UserError("name the zoo models to fetch, or pass --all")
    if every and release:
        raise UserError("--all fetches every release; drop --release")
    import_backend()
    from keras_liverseg import zoo as zoo_api
    from keras_liverseg.zoo import download

    with _one_line_errors():
        records = _records(refresh=not download.offline())
        if every:
            chosen = records
        else:
            for name in names:
                _known(zoo_api, name)
            chosen = [zoo_api.weights_record(name, release or "default") for name in names]
        for record in chosen:
            path = (download.resolve(record, progress=not quiet) if record.bundled
                    else download.fetch(record, progress=not quiet, force=force))
            state = "bundled, verified" if record.bundled else "cached, verified"
            click.echo(f"{record.model} {record.release}: {state}: {path}")


def _known(zoo_api, name: str) -> None:
    try:
        zoo_api.get_entry(name)
    except ValueError as error:
        raise UserError(str(error)) from None


@zoo.command("verify")
def verify() -> None:
    """Re-hash the bundled and cached weights; exit code 1 if any is corrupt."""
    import_backend()
    from keras_liverseg.zoo import download
    from keras_liverseg.zoo.errors import WeightsMismatch
    from keras_liverseg.zoo.index import bundled_file

    with _one_line_errors():
        records = _records()
    bad = checked = 0
    for record in records:
        path = bundled_file(record) if record.bundled else download.cache_path(record)
        if path is None or not path.is_file():
            if record.bundled:
                click.echo(f"MISSING {record.model} {record.release}: reinstall keras_liverseg")
                bad += 1
            continue
        checked += 1
        try:
            download.verify_file(path, record)
        except WeightsMismatch as error:
            bad += 1
            click.echo(f"CORRUPT {error}: run `liverseg zoo fetch {record.model} --release "
                       f"{record.release} --force`")
        else:
            click.echo(f"ok      {record.model} {record.release}: {path}")
    leftovers = sorted((download.liverseg_home() / "weights").rglob("*.partial"))
    for leftover in leftovers:
        click.echo(f"partial {leftover} (an interrupted download; `liverseg zoo clear` "
                   "removes it)")
    click.echo(f"{checked} files checked, {bad} bad")
    if bad:
        raise click.exceptions.Exit(1)


@zoo.command("path")
@click.argument("name")
@click.option("--release", default=None, help="This release instead of the default weights.")
def path(name: str, release: str | None) -> None:
    """Print the local file of NAME's weights (bundled or cached; never downloads)."""
    import_backend()
    from keras_liverseg import zoo as zoo_api
    from keras_liverseg.zoo import download
    from keras_liverseg.zoo.index import bundled_file

    _known(zoo_api, name)
    with _one_line_errors():
        record = zoo_api.weights_record(name, release or "default")
    if record.bundled:
        local = bundled_file(record)
    else:
        local = download.cache_path(record) if download.is_cached(record) else None
    if local is None:
        raise UserError(f"the weights of {name!r} (release {record.release}) are not in the "
                        f"cache: run `liverseg zoo fetch {name} --release {record.release}`")
    click.echo(str(local))


@zoo.command("clear")
@click.argument("names", nargs=-1, metavar="[NAME...]")
def clear(names: tuple[str, ...]) -> None:
    """Delete cached weights (of NAME..., else all, with the mirrors' cached indexes).

    Bundled weights are part of the package and stay."""
    import_backend()
    from keras_liverseg import zoo as zoo_api
    from keras_liverseg.zoo import download

    home = download.liverseg_home()
    if names:
        for name in names:
            _known(zoo_api, name)
        folders = [home / "weights" / name for name in names]
    else:
        folders = [home / "weights", home / "mirrors"]
    freed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        freed += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        try:
            shutil.rmtree(folder)
        except OSError as error:
            raise UserError(f"cannot delete {folder}: {error.strerror or error}") from None
    click.echo(f"cleared {_megabytes(freed)} from {home}")


@zoo.command("publish")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", "release_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="The release folder (a mirror's root): weights, model card and index.json "
                   "go there; an existing one keeps its other releases.")
@click.option("--release", default=None, help="The release name (default: RUN_DIR's name).")
@click.option("--not-default", is_flag=True,
              help="Do not make these the model's default weights on this mirror.")
def publish(run_dir: Path, release_dir: Path, release: str | None, not_default: bool) -> None:
    """Turn a `liverseg train` run folder into a weights release a mirror can serve.

    Serve RELEASE_DIR with `python -m http.server --directory RELEASE_DIR 8000` and set
    LIVERSEG_WEIGHTS_URL=http://HOST:8000 where the weights are to be used (or point it at
    the folder itself); `liverseg zoo fetch MODEL` then downloads and checks them.
    """
    import_backend()
    from keras_liverseg.zoo.publish import publish as publish_run

    with _one_line_errors():
        record = publish_run(run_dir, release_dir, release=release, default=not not_default)
    click.echo(f"published {record.model} release {record.release} "
               f"({_megabytes(record.size)}, sha256 {record.sha256[:12]}...) in {release_dir}: "
               f"serve it with `python -m http.server --directory {release_dir} 8000` and set "
               "LIVERSEG_WEIGHTS_URL=http://HOST:8000")
