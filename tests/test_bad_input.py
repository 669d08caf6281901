"""Bad input gets a clear actorflow exception, and nothing is written."""

from __future__ import annotations

import pytest

import actorflow as af


class NotEncodable:
    pass


@af.step
async def echo(ctx: af.StepContext, value: object) -> object:
    return value


@af.step
async def returns_junk(ctx: af.StepContext, _: None) -> object:
    return NotEncodable()


@af.workflow
async def passes_junk(ctx: af.WorkflowContext, _: None) -> str:
    with pytest.raises(af.EncodeError, match="the input of step 'echo'"):
        await ctx.step(echo, NotEncodable())
    with pytest.raises(TypeError, match="the output of step 'returns_junk'"):
        await ctx.step(returns_junk)
    with pytest.raises(af.EncodeError, match="stream 'k'"):
        await ctx.write_stream("k", NotEncodable())
    with pytest.raises(af.ValidationError, match="invalid stream key"):
        await ctx.write_stream("bad key!", 1)
    return await ctx.step(echo, "still fine")


async def test_non_encodable_values_raise_at_the_call() -> None:
    async with af.Runtime() as rt:
        assert await rt.run(passes_junk) == "still fine"


async def test_non_encodable_workflow_input_writes_nothing() -> None:
    async with af.Runtime() as rt:
        with pytest.raises(af.EncodeError, match="the input of workflow 'passes_junk'") as info:
            await rt.start(passes_junk, NotEncodable())
        assert isinstance(info.value, TypeError)
        assert await rt.list_runs() == []


async def test_bad_run_id_and_status() -> None:
    async with af.Runtime() as rt:
        with pytest.raises(af.ValidationError, match="invalid run_id"):
            await rt.start(passes_junk, run_id="has space")
        with pytest.raises(ValueError, match="unknown run status"):
            await rt.list_runs("DONE")


def test_bad_names_fail_at_decoration() -> None:
    with pytest.raises(af.ValidationError, match="invalid step name 'no spaces'"):

        @af.step(name="no spaces")
        async def s(ctx: af.StepContext, x: int) -> int:
            return x

    with pytest.raises(ValueError, match="invalid workflow name"):

        @af.workflow(name="x" * 65)
        async def w(ctx: af.WorkflowContext, x: int) -> int:
            return x

    with pytest.raises(af.ValidationError, match=r"must take exactly \(ctx, input\)"):

        @af.step
        async def three(ctx: af.StepContext, a: int, b: int) -> int:
            return a + b

    with pytest.raises(af.ValidationError, match="must be an `async def`"):

        @af.workflow
        def sync_body(ctx: af.WorkflowContext, x: int) -> int:  # type: ignore[type-var]
            return x

    with pytest.raises(af.ValidationError, match="retries must be"):
        af.step(retries=-1)


async def test_every_public_exception_derives_from_actorflow_error() -> None:
    for name in af.__all__:
        obj = getattr(af, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, af.ActorflowError), name


async def test_runtime_rejects_a_bad_journal_argument() -> None:
    with pytest.raises(af.ValidationError, match="Runtime"):
        af.Runtime(42)  # type: ignore[arg-type]
