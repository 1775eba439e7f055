"""The viewer's parts legend as a tool: one row per part (colour swatch, id, name) with a
check box — unchecked parts are not drawn and not recorded — and in-place renaming
(double-click or F2, or click a part in the drawn legend), which the window writes into the
bundle as ``parttrack label --name`` does.
"""

from __future__ import annotations

from PyQt6 import QtCore, QtGui, QtWidgets
from PyQt6.QtCore import Qt


def swatch(rgb, side: int = 14) -> QtGui.QIcon:
    pixmap = QtGui.QPixmap(side, side)
    pixmap.fill(QtGui.QColor(*[int(v) for v in rgb]))
    return QtGui.QIcon(pixmap)


class PartsPanel(QtWidgets.QDockWidget):
    """Signals: ``toggled(part_id, on)``, ``renamed(part_id, name)`` (1-based part ids)."""

    toggled = QtCore.pyqtSignal(int, bool)
    renamed = QtCore.pyqtSignal(int, str)

    def __init__(self, parent=None) -> None:
        super().__init__("Parts", parent)
        self.setObjectName("parts_panel")
        self.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.list = QtWidgets.QListWidget(self)
        self.list.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.DoubleClicked
                                  | QtWidgets.QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setToolTip("check: draw and record the part · double-click or F2: rename it (saved in the model)")
        self.list.itemChanged.connect(self._changed)
        self.setWidget(self.list)
        self._names: list[str] = []
        self._checked: list[bool] = []
        self._filling = False

    def set_parts(self, names, colors, hidden=frozenset()) -> None:
        """Show K parts (names, RGB colours; ``hidden``: 1-based ids shown unchecked)."""
        self._filling = True
        self.list.clear()
        self._names = [str(n) for n in names]
        self._checked = []
        for i, (name, rgb) in enumerate(zip(names, colors), start=1):
            item = QtWidgets.QListWidgetItem(swatch(rgb), str(name))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable)
            on = i not in hidden
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.UserRole, i)
            item.setToolTip(f"part {i}")
            self.list.addItem(item)
            self._checked.append(on)
        self._filling = False

    def item(self, part_id: int) -> QtWidgets.QListWidgetItem:
        return self.list.item(part_id - 1)

    def edit(self, part_id: int) -> None:
        """Start renaming a part in place."""
        item = self.item(part_id)
        if item is not None:
            self.show()
            self.list.setCurrentItem(item)
            self.list.editItem(item)

    def _changed(self, item: QtWidgets.QListWidgetItem) -> None:
        if self._filling:
            return
        pid = int(item.data(Qt.ItemDataRole.UserRole))
        on = item.checkState() == Qt.CheckState.Checked
        if on != self._checked[pid - 1]:
            self._checked[pid - 1] = on
            self.toggled.emit(pid, on)
        name = item.text().strip()
        if name != self._names[pid - 1]:
            if not name:  # an empty name is refused: put the old one back
                self._filling = True
                item.setText(self._names[pid - 1])
                self._filling = False
                return
            self._names[pid - 1] = name
            self.renamed.emit(pid, name)
