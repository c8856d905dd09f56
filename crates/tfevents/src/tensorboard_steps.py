"""Prints, for each tag of a TensorBoard folder, the steps TensorBoard itself keeps:
`tag<TAB>1,2,3`, one line a tag.

It reads with the `EventAccumulator` the TensorBoard server loads runs with
(`plugin_event_accumulator`, where scalars, images and text are all tensors), with its
default purging of data orphaned by a restart, and keeps every point (size guidance 0).

Usage: python tensorboard_steps.py RUN/tensorboard
       python tensorboard_steps.py RUN/tensorboard --graph   (the graph's node names, one a line)
(tfevents::Accumulator runs it with `python -c`.)
"""
import sys

from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator


def main(path: str, graph: bool) -> None:
    acc = EventAccumulator(path, size_guidance={"tensors": 0})
    acc.Reload()
    if graph:
        for node in acc.Graph().node:
            print(node.name)
        return
    for tag in sorted(acc.Tags()["tensors"]):
        print(tag + "\t" + ",".join(str(event.step) for event in acc.Tensors(tag)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] == ["--graph"])
