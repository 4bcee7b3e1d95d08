"""Grouped splits: every image of one lesion (or patient) lands in the same split.

Public sets after ISIC 2017 hold several images of one lesion; splitting them image by image
puts the same lesion in train and test and inflates every metric. Here the unit of a split is
the group, stratified by the group's class as far as the groups allow.
"""

from __future__ import annotations

from collections import Counter

from lesion_core.data.records import Problem
from lesion_core.i18n import N_

# What one group is called in the report, by the column it comes from.
_NOUNS = {"lesion_id": (N_("lesion"), N_("lesions")), "patient_id": (N_("patient"), N_("patients"))}


def group_of(record) -> str:
    """The record's group; a record without one is a group of its own."""
    return record.group or f"\0{record.id}"


def carve_groups(records: list, fraction: float, seed: int, report) -> tuple:
    """Split records into (kept, carved), about `fraction` of the groups carved, no group in both.

    Groups are stratified by their most common label; when a class has too few groups for
    that, the groups are split at random and the report says so.
    """
    from sklearn.model_selection import train_test_split

    members = {}
    for record in records:
        members.setdefault(group_of(record), []).append(record)
    keys = sorted(members)
    if len(keys) < 2:
        return records, []
    labels = [Counter(r.label for r in members[k]).most_common(1)[0][0] for k in keys]
    try:
        kept, carved = train_test_split(keys, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError:
        if not any(n.kind == "unstratified_split" for n in report.notes):
            report.notes.append(Problem("", "unstratified_split",
                                        N_("too few groups per class to stratify; groups split at random")))
        try:
            kept, carved = train_test_split(keys, test_size=fraction, random_state=seed)
        except ValueError:
            return records, []
    carved = set(carved)
    return ([r for r in records if group_of(r) not in carved],
            [r for r in records if group_of(r) in carved])


def crossing_groups(records: list) -> dict:
    """Groups found in more than one split: group -> sorted split names."""
    seen = {}
    for record in records:
        if record.group:
            seen.setdefault(record.group, set()).add(record.split)
    return {g: sorted(s) for g, s in seen.items() if len(s) > 1}


def leak_line(records: list, column: str, report) -> str:
    """The report's line on the split, e.g. "split by lesion_id: 7,470 lesions, no lesion in
    two splits"; groups that still cross (official split files put them there) are problems
    worth seeing, listed as notes."""
    one, many = _NOUNS.get(column, (N_("group"), N_("groups")))
    n_groups = len({group_of(r) for r in records})
    crossing = crossing_groups(records)
    for group, names in sorted(crossing.items()):
        where = (N_("{column} {group} has images in {first} and {second}") if len(names) == 2 else
                 N_("{column} {group} has images in {first} and {second} and {third}"))
        report.notes.append(Problem("", "group_in_two_splits", where.format(
            column=column, group=group, **dict(zip(("first", "second", "third"), names)))))
    ungrouped = sum(1 for r in records if not r.group)
    # One whole message per case (a page finds the line again in the catalogue), the same English.
    if crossing:
        line = (N_("split by {column}: {n} {many}, {crossing} {many} in two splits (given by the dataset's own "
                   "split files) ({ungrouped} images without {column}, each its own {one})") if ungrouped else
                N_("split by {column}: {n} {many}, {crossing} {many} in two splits (given by the dataset's own "
                   "split files)"))
    else:
        line = (N_("split by {column}: {n} {many}, no {one} in two splits ({ungrouped} images without {column}, "
                   "each its own {one})") if ungrouped else
                N_("split by {column}: {n} {many}, no {one} in two splits"))
    return line.format(column=column, n=f"{n_groups:,}", many=many, one=one, crossing=f"{len(crossing):,}",
                       ungrouped=f"{ungrouped:,}")
