"""manage.py import_legacy_media: legacy outputs and reference packs into albums, safely re-runnable."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from imagineer.core import jobs
from imagineer.core.models import JobStatus
from legacy import services, stager
from legacy.collectors import LegacyRootMissing
from legacy.manifest import default_manifest_path, write_manifest
from legacy.models import ImportMode, ImportRun


class Command(BaseCommand):
    help = (
        "Import legacy outputs (singles, decks, zodiac, LoRA tests) and reference packs into albums. "
        "Identical bytes are one image; a second run imports nothing new."
    )

    def add_arguments(self, parser):
        parser.add_argument("--outputs", type=Path, help="The legacy outputs/ folder.")
        parser.add_argument("--packs", type=Path, help="The 'image packs' folder of reference datasets.")
        parser.add_argument("--dry-run", action="store_true", help="Read everything, print the plan, change nothing.")
        parser.add_argument("--mode", choices=ImportMode.values, default=ImportMode.COPY)
        parser.add_argument("--limit", type=int, help="Import at most N images (in path order).")
        parser.add_argument("--private-packs", nargs="+", default=[], metavar="NAME", help="Packs to make private.")
        parser.add_argument(
            "--manifest", type=Path, help=f"Where to write the manifest (default {default_manifest_path()})."
        )
        parser.add_argument(
            "--follow-links-outside",
            action="store_true",
            help=(
                "Follow symlinks whose target is outside the given roots (by default they are skipped and "
                "reported). Only for a tree you trust: whatever such a link reaches is imported."
            ),
        )
        parser.add_argument(
            "--thumbnails",
            choices=["job", "inline", "none"],
            default="job",
            help="job: queue thumbnail jobs (default); inline: make them now; none: on first view.",
        )

    def handle(self, *args, **opts):
        if not opts["outputs"] and not opts["packs"]:
            raise CommandError("Give --outputs DIR and/or --packs DIR.")
        if opts["limit"] is not None and opts["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        for flag in ("outputs", "packs"):
            if opts[flag] and not opts[flag].is_dir():
                raise CommandError(f"--{flag} {opts[flag]} is not a folder.")
        options = services.ImportOptions(
            outputs=opts["outputs"].absolute() if opts["outputs"] else None,
            packs=opts["packs"].absolute() if opts["packs"] else None,
            mode=opts["mode"],
            limit=opts["limit"],
            private_packs=tuple(opts["private_packs"]),
            follow_links_outside=opts["follow_links_outside"],
        )
        if opts["dry_run"]:
            return self._dry_run(options, opts)
        try:
            stager.check_media_writable(options.mode)
        except stager.MediaNotWritable as exc:
            raise CommandError(exc.message) from exc
        manifest = (opts["manifest"] or default_manifest_path()).absolute()
        run = services.start_import_run(options, manifest_path=manifest)
        bar = tqdm(total=0, unit="file", disable=not sys.stderr.isatty(), file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            jobs.run_job(
                ImportRun,
                run.pk,
                lambda job: services.run_import(job, progress=progress, thumbnails=opts["thumbnails"]),
            )
        finally:
            bar.close()
        run.refresh_from_db()
        if run.status != JobStatus.SUCCEEDED:
            raise CommandError(f"Import run #{run.pk} {run.status}: {run.error_message}")
        self._summary(run, manifest, opts["verbosity"])

    def _dry_run(self, options: services.ImportOptions, opts) -> None:
        try:
            plan = services.plan_collection(services.collect_for(options))
        except LegacyRootMissing as exc:
            raise CommandError(str(exc)) from exc
        out = self.stdout
        out.write("Dry run: nothing was written.")
        for album, count in plan["albums"].items():
            out.write(f"  {album}: {count} image(s)")
        for outcome, count in sorted(plan["outcomes"].items()):
            out.write(f"  {outcome}: {count}")
        out.write(f"  albums to create: {plan['albums_to_create']}")
        out.write(f"  orphan sidecars: {plan['orphan_sidecars']}")
        out.write(f"  links outside roots: {_links_outside(plan['links_outside'], options.follow_links_outside)}")
        if opts["verbosity"] >= 2:
            for entry in plan["entries"]:
                out.write(
                    f"    {entry['outcome']}: {entry['source']}"
                    + (f" ({entry['reason']})" if "reason" in entry else "")
                )
        if opts["manifest"]:  # only where asked: a dry run leaves no file behind by default
            summary = {
                "dry_run": True,
                **plan["outcomes"],
                "links_outside": plan["links_outside"],
                "follow_links_outside": options.follow_links_outside,
            }
            write_manifest(opts["manifest"], plan["entries"], summary=summary)
            out.write(f"  plan written to {opts['manifest']}")

    def _summary(self, run: ImportRun, manifest: Path, verbosity: int) -> None:
        out = self.stdout
        out.write(self.style.SUCCESS(f"Import run #{run.pk} done."))
        out.write(f"  images imported:       {run.imported_count}")
        out.write(f"  already present:       {run.already_present_count}")
        out.write(f"  duplicates (linked):   {run.duplicate_count}")
        out.write(f"  albums created/reused: {run.albums_created}/{run.albums_reused}")
        out.write(f"  files skipped:         {run.skipped_count}")
        for item in run.skipped[: None if verbosity >= 2 else 20]:
            out.write(f"    {item['path']}: {item['reason']}")
        if verbosity < 2 and len(run.skipped) > 20:
            out.write(f"    … {len(run.skipped) - 20} more in the manifest")
        out.write(f"  orphan sidecars:       {run.orphan_sidecar_count}")
        out.write(f"  links outside roots:   {_links_outside(run.links_outside_count, run.follow_links_outside)}")
        out.write(f"  manifest:              {manifest}")


def _links_outside(count: int, followed: bool) -> str:
    """What became of symlinks out of the roots: the operator sees the refusal and how to lift it."""
    if followed:
        return "followed (--follow-links-outside)"
    if count:
        return f"{count} not followed (listed under skipped; --follow-links-outside follows them)"
    return "0"
