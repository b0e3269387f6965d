"""The tools the agent may call. `calculator` evaluates arithmetic safely (no eval)."""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

from durable.common import NonRetryableError

_BINARY: dict[type[ast.operator], Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Any] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPRESSION = 200
MAX_EXPONENT = 100

# OpenAI "tools" schema of what the model may call.
TOOL_SPECS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression with + - * / // % ** and parentheses.",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string", "description": "e.g. 2+3*4"}},
                "required": ["expression"],
            },
        },
    }
]


def _number(value: float) -> int | float:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def calculate(expression: str) -> int | float:
    """Evaluate `expression`; raises NonRetryableError for anything but arithmetic."""
    if not expression or len(expression) > MAX_EXPRESSION:
        raise NonRetryableError(f"expression must be 1..{MAX_EXPRESSION} characters",
                                type="InvalidExpression")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise NonRetryableError(f"not an arithmetic expression: {expression!r}",
                                type="InvalidExpression") from None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(
            node.value, bool
        ):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
                raise NonRetryableError("exponent too large", type="InvalidExpression")
            result: float = _BINARY[type(node.op)](left, right)
            return result
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            unary: float = _UNARY[type(node.op)](walk(node.operand))
            return unary
        raise NonRetryableError(f"unsupported syntax in {expression!r}", type="InvalidExpression")

    try:
        value = walk(tree)
    except ZeroDivisionError:
        raise NonRetryableError("division by zero", type="InvalidExpression") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise NonRetryableError("result is not finite", type="InvalidExpression")
    return _number(value)


def run_tool(name: str, arguments: dict[str, Any]) -> str:
    """Run tool `name` and return its result as text (what the model reads)."""
    if name == "calculator":
        return str(calculate(str(arguments.get("expression", ""))))
    raise NonRetryableError(f"unknown tool {name!r}", type="UnknownTool")
