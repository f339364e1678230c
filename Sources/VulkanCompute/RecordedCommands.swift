import CVulkan

/// A command buffer recorded once by `CommandStream.beginCapture()` … `endCapture()` and queued
/// again by `CommandStream.replay(_:)`, unchanged, as often as wanted: a decode step binds the same
/// buffers, pushes the same constants and launches the same grids token after token, only the
/// contents of its input buffers (token ids, positions) differ. Replaying it costs the host one
/// queue submission instead of recording every dispatch again.
///
/// It owns its command pool (so no batch's pool reset touches it), keeps alive every allocation
/// it binds, and binds only descriptor sets from the stream's never-reset cache.
public final class RecordedCommands {
    let device: VulkanDevice
    /// The stream that recorded it; it is queued on no other (nor on one made later in its place).
    weak var stream: CommandStream?
    private let pool: VkCommandPool
    let commands: VkCommandBuffer
    /// Every allocation the commands bind.
    let retained: [DeviceAllocation]
    /// What the commands leave written (or read) since their last barrier: the stream's hazard
    /// state after a replay, so a dispatch recorded after it waits where it must.
    let finalWrites: PendingRanges
    let finalReads: PendingRanges
    /// Dispatches and barriers the commands hold.
    public let dispatches: Int
    public let barriers: Int

    init(device: VulkanDevice, stream: CommandStream, pool: VkCommandPool, commands: VkCommandBuffer, retained: [DeviceAllocation],
         finalWrites: PendingRanges, finalReads: PendingRanges, dispatches: Int, barriers: Int) {
        self.device = device
        self.stream = stream
        self.pool = pool
        self.commands = commands
        self.retained = retained
        self.finalWrites = finalWrites
        self.finalReads = finalReads
        self.dispatches = dispatches
        self.barriers = barriers
    }

    /// The stream drops its reference only after the fence of every queueing has signalled, so
    /// the buffer is never pending here.
    deinit { device.fns.destroyCommandPool(device.handle, pool, nil) }
}
