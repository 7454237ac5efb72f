"""A tool-calling agent that can "solve a visual task" by running a CollabVR episode.

The chat model here is langchain-core's fake one, scripted to call the tool once and then answer,
so the example runs offline; put your own chat model in its place.

    python examples/agent_tool.py
"""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

import collabvr


@tool
def solve_visual_task(task: str) -> str:
    """Solve a visual reasoning task (a sim spec such as "sim:maze/easy") by generating a video step by
    step; returns how it ended and where the video is."""
    episode = collabvr.run(task, out_dir="runs/example-agent")
    return f"{episode.status}: score {episode.score['score']:.2f}, video {episode.final_video}"


model = FakeMessagesListChatModel(responses=[
    AIMessage("", tool_calls=[{"name": "solve_visual_task", "args": {"task": "sim:maze/easy"}, "id": "call-1"}]),
    AIMessage("Solved it: the maze video is in runs/example-agent/final.mp4."),
])


def agent(state: MessagesState) -> dict:
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode([solve_visual_task]))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
app = builder.compile()

if __name__ == "__main__":
    messages = app.invoke({"messages": [HumanMessage("Please solve the easy maze.")]})["messages"]
    for message in messages:
        print(f"{message.type:>5}: {message.content or message.tool_calls}")
